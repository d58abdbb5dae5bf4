package io.natgate.dns;

import io.natgate.peers.NodeNamespace;
import static io.natgate.dns.DnsLab.ALLOWED;
import static io.natgate.dns.DnsLab.BELOW_WILDCARD;
import static io.natgate.dns.DnsLab.BLOCKED;
import static io.natgate.dns.DnsLab.BLOCKED_POOL;
import static io.natgate.dns.DnsLab.CDN_POOL;
import static io.natgate.dns.DnsLab.EGRESS_IP;
import static io.natgate.dns.DnsLab.GATEWAY;
import static io.natgate.dns.DnsLab.POOL;
import static io.natgate.dns.DnsLab.PORT;
import static io.natgate.dns.DnsLab.WILDCARD;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import io.natgate.Defaults;
import io.natgate.dataplane.DestinationSets;
import io.natgate.lab.LabPod;
import io.natgate.lab.NetworkLab;
import io.natgate.peers.SequenceClock;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The DNS path with real packets ({@link DnsLab}): pods on nodes 1 and 2 resolve through their node's proxy (the
 * redirect applied with the node's data plane), their gateway node 3 holds the egress IP and gets the pairs, node 4
 * stands by and gets them relayed; the stand-in check on node 3 resets a new connection whose pair is not in a set.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class DnsPathLabIT {
  static final Duration GRACE = Duration.ofSeconds(1);

  @RegisterExtension
  static final NetworkLab lab = NetworkLab.withNodes(4).podsPerNode(1);

  static DnsLab dns;

  @BeforeAll
  static void start() {
    if (lab.started()) {
      dns = new DnsLab(lab, 3, List.of(1, 2), 4, GRACE);
    }
  }

  @AfterAll
  static void stop() {
    if (dns != null) {
      dns.close();
    }
  }

  static JsonNode resolve(LabPod pod, String name, int count, boolean connect, String... more) {
    return dns.resolve(pod, name, count, connect, more);
  }

  static java.util.Set<String> pairs(int node, String fqdn) {
    return dns.pairs(node, fqdn);
  }

  static double rejected(int node, String reason) {
    return dns.rejected(node, reason);
  }

  @Test
  @Order(1)
  void everyAnsweredAddressIsAllowedForItsPodBeforeThePodGetsIt() throws Exception {
    // The redirect is written as iptables-save prints it: a repair finds nothing to change.
    for (int n : List.of(1, 2)) {
      assertThat(dns.dataplane(n).repair().changed()).as("drift on node %d", n).isFalse();
    }
    int count = 1000;
    long queriesBefore = dns.queries();
    var fromA = CompletableFuture.supplyAsync(() -> resolve(lab.pod(1, 1), ALLOWED, count, true));
    var fromB = CompletableFuture.supplyAsync(() -> resolve(lab.pod(2, 1), ALLOWED, count, true));
    for (JsonNode r : List.of(fromA.get(10, TimeUnit.MINUTES), fromB.get(10, TimeUnit.MINUTES))) {
      int answered = r.path("rcodes").path("0").asInt();
      int servfail = r.path("rcodes").path("2").asInt();
      System.out.printf("%d answers, %d SERVFAIL (confirmation later than %d ms), %d connections, %d refused, "
          + "%d failed, errors %s, addresses %s%n", answered, servfail, Defaults.DNS_CONFIRM_TIMEOUT_MS,
          r.path("connected").asInt(), r.path("refused").asInt(), r.path("connect_failed").asInt(), r.path("errors"),
          r.path("addresses"));
      // Every query answered: with the addresses once the gateway has them, or (failurePolicy Drop) SERVFAIL when
      // its confirmation took longer than the timeout, which only a starved machine shows; never a lost query.
      assertThat(answered + servfail).as("answers and SERVFAILs").isEqualTo(count);
      assertThat(answered).as("answers").isGreaterThanOrEqualTo(count * 99 / 100);
      assertThat(r.path("refused").asInt()).as("connections refused").isZero();
      assertThat(r.path("connect_failed").asInt()).as("connections failed otherwise").isZero();
      assertThat(r.path("connected").asInt()).as("connections").isEqualTo(2 * answered);
      // Rotating answers: the pod saw the whole pool, each address allowed in time.
      assertThat(r.path("addresses").toString()).contains(POOL.get(0), POOL.get(POOL.size() - 1));
    }
    assertThat(dns.queries() - queriesBefore).isEqualTo(2L * count);
    // Each pod's pairs, and only its own: the other pod's answers do not open these addresses for it.
    assertThat(pairs(3, ALLOWED)).allMatch(p -> p.startsWith(lab.pod(1, 1).ip() + ",")
        || p.startsWith(lab.pod(2, 1).ip() + ","));
    // The standby got them too (relayed by the holder after it acknowledged).
    await().atMost(Duration.ofSeconds(2)).until(() -> pairs(4, ALLOWED).containsAll(pairs(3, ALLOWED)));
  }

  @Test
  @Order(2)
  void aNameBelowAWildcardFollowsItsCnameChainAndANameNotAllowedOrAnotherPortOpensNothing() throws Exception {
    JsonNode cdn = resolve(lab.pod(1, 1), BELOW_WILDCARD, 20, true);
    assertThat(cdn.path("connected").asInt()).isEqualTo(40);
    assertThat(cdn.path("refused").asInt()).isZero();
    assertThat(pairs(3, WILDCARD)).isNotEmpty().allMatch(p -> CDN_POOL.contains(p.substring(p.indexOf(',') + 1)));

    JsonNode blocked = resolve(lab.pod(2, 1), BLOCKED, 20, true);
    assertThat(blocked.path("rcodes").path("0").asInt()).as("the answer itself is released").isEqualTo(20);
    assertThat(blocked.path("connected").asInt()).as("but nothing opens for it").isZero();
    assertThat(blocked.path("refused").asInt()).isEqualTo(40);
    for (String fqdn : List.of(ALLOWED, WILDCARD)) {
      assertThat(pairs(3, fqdn)).noneMatch(p -> BLOCKED_POOL.stream().anyMatch(p::endsWith));
    }

    // An allowed name on a port its entry does not list: refused by the gateway, nothing reaches the host.
    lab.resetArrivals();
    JsonNode otherPort = resolve(lab.pod(1, 1), ALLOWED, 10, false, "--connect-port", String.valueOf(PORT + 1));
    assertThat(otherPort.path("rcodes").path("0").asInt()).isEqualTo(10);
    assertThat(otherPort.path("connected").asInt()).isZero();
    assertThat(otherPort.path("refused").asInt()).isPositive();
    assertThat(lab.arrivals(PORT + 1)).isEmpty();
  }

  @Test
  @Order(3)
  void queriesOverTcpAreFollowedToo() {
    long before = dns.queries();
    JsonNode r = resolve(lab.pod(2, 1), ALLOWED, 20, true, "--tcp");
    assertThat(r.path("rcodes").path("0").asInt()).isEqualTo(20);
    assertThat(r.path("connected").asInt()).isEqualTo(40);
    assertThat(r.path("refused").asInt()).isZero();
    assertThat(dns.queries() - before).as("through the proxy, over TCP to the resolver too").isEqualTo(20);
  }

  @Test
  @Order(4)
  void pairsLeaveWithinTheirTtlPlusTheGrace() {
    resolve(lab.pod(1, 1), ALLOWED, 5, false);
    long last = System.nanoTime();
    assertThat(pairs(3, ALLOWED)).isNotEmpty();
    // The longest TTL the lab gives is 5 s; ipset counts whole seconds (and may list an entry up to a second more).
    Duration bound = Duration.ofSeconds(5).plus(GRACE).plusSeconds(1);
    await().atMost(bound.plusSeconds(2)).pollInterval(Duration.ofMillis(100)).until(() -> pairs(3, ALLOWED).isEmpty());
    Duration took = Duration.ofNanos(System.nanoTime() - last);
    System.out.printf("pairs gone %d ms after the last answer (bound %d ms)%n", took.toMillis(), bound.toMillis());
    assertThat(took).isLessThanOrEqualTo(bound);
  }

  @Test
  @Order(5)
  void forgedReplayedAndStrangerPairsAreRefusedAndCounted() throws Exception {
    String set = DestinationSets.fqdn(GATEWAY, ALLOWED);
    String pod = lab.pod(1, 1).ip();
    var pair = List.of(new PairMessage.Pair(pod, "203.0.113.99", 60));
    long seq = new SequenceClock().next(System.currentTimeMillis());
    byte[] genuine = new PairCodec(dns.key).encode(new PairMessage.Pairs(lab.node(1).name() + "-test", seq, false,
        GATEWAY, ALLOWED, pair));
    byte[] otherKey = dns.key.clone();
    otherKey[0] ^= 1;
    byte[] forged = new PairCodec(otherKey).encode(new PairMessage.Pairs(lab.node(1).name() + "-test", seq + 1,
        false, GATEWAY, ALLOWED, pair));
    byte[] stranger = new PairCodec(dns.key).encode(new PairMessage.Pairs(lab.node(1).name() + "-test", seq + 2, false,
        GATEWAY, ALLOWED, List.of(new PairMessage.Pair(lab.pod(4, 1).ip(), "203.0.113.99", 60))));
    double mac = rejected(3, "mac");
    double replay = rejected(3, "replay");
    double strangers = rejected(3, "stranger");

    send(1, forged);
    await().atMost(Duration.ofSeconds(2)).until(() -> rejected(3, "mac") == mac + 1);
    send(1, genuine);
    await().atMost(Duration.ofSeconds(2)).until(() -> pairs(3, ALLOWED).contains(pod + ",203.0.113.99"));
    lab.exec(lab.node(3).ns(), "ipset", "del", set, dns.netnet() ? pod + ",203.0.113.99" : pod + ",tcp:" + PORT
        + ",203.0.113.99");
    send(1, genuine); // recorded and sent again
    await().atMost(Duration.ofSeconds(2)).until(() -> rejected(3, "replay") == replay + 1);
    send(1, stranger); // a pod this gateway does not SNAT
    await().atMost(Duration.ofSeconds(2)).until(() -> rejected(3, "stranger") == strangers + 1);
    assertThat(pairs(3, ALLOWED)).noneMatch(p -> p.endsWith(",203.0.113.99"));
    assertThat(rejected(3, "mac")).isEqualTo(mac + 1);
  }

  /** Sends one datagram from a node to the holder's pair port (the egress IP). */
  static void send(int node, byte[] datagram) throws Exception {
    var sent = new CompletableFuture<Void>();
    try (var ns = new NodeNamespace(dns.kernel(node))) {
      ns.threads("test-send").newThread(() -> {
        try (DatagramChannel c = DatagramChannel.open()) {
          c.send(ByteBuffer.wrap(datagram), new InetSocketAddress(EGRESS_IP, Defaults.DNS_PAIR_PORT));
          sent.complete(null);
        } catch (Exception e) {
          sent.completeExceptionally(e);
        }
      }).start();
      sent.get(5, TimeUnit.SECONDS);
    }
  }

  @Test
  @Order(6)
  void withTheProxyDownQueriesFailFastAndNothingLeaksThenWorkAgainWithoutTouchingThePod() {
    LabPod pod = lab.pod(1, 1);
    dns.stopPath(1); // the agent stopped; its kernel state (the redirect) stays
    long before = dns.queries();
    // Five: the kernel sends a source at most 6 ICMP errors at once, then one a second (icmp_ratelimit); past that
    // a query times out instead of being refused.
    JsonNode down = resolve(pod, ALLOWED, 5, false);
    System.out.printf("proxy down: %s, times (ms) %s%n", down.path("errors"), down.path("ms"));
    assertThat(down.path("rcodes").size()).as("no answer at all").isZero();
    assertThat(down.path("errors").path("refused").asInt()).as("refused at once (ICMP port unreachable)")
        .isEqualTo(5);
    down.path("ms").forEach(ms -> assertThat(ms.asDouble()).isLessThan(500));
    assertThat(dns.queries()).as("no query reached the resolver around the proxy").isEqualTo(before);

    dns.startPath(1); // the agent is back
    JsonNode up = resolve(pod, ALLOWED, 20, true);
    assertThat(up.path("rcodes").path("0").asInt()).isEqualTo(20);
    assertThat(up.path("connected").asInt()).isEqualTo(40);
  }

  @Test
  @Order(7)
  void latencyTheProxyAdds() {
    // pod 3-1 is not followed (node 3 SNATs only pods of nodes 1 and 2): it asks the resolver directly.
    DnsLatency.print(resolve(lab.pod(1, 1), ALLOWED, 500, false), resolve(lab.pod(3, 1), ALLOWED, 500, false));
  }
}
