package io.natgate.dns;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.natgate.Defaults;
import io.natgate.api.v1alpha1.AllowEntry;
import io.natgate.api.v1alpha1.FailurePolicy;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.api.v1alpha1.PortRange;
import io.natgate.api.v1alpha1.Protocol;
import io.natgate.dataplane.DataplaneSettings;
import io.natgate.dataplane.DestinationSets;
import io.natgate.dataplane.Kernel;
import io.natgate.dataplane.KernelPlan;
import io.natgate.dataplane.NodeDataplane;
import io.natgate.dataplane.Renderer;
import io.natgate.lab.LabNode;
import io.natgate.lab.LabPod;
import io.natgate.lab.NetworkLab;
import io.natgate.peers.SequenceClock;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
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
 * The DNS path with real packets: pods on nodes 1 and 2 resolve through their node's proxy (the redirect applied
 * with the node's data plane), their gateway node 3 holds the egress IP and gets the pairs, node 4 stands by and
 * gets them relayed. Until the gateway's own enforcement exists, the test puts a stand-in on node 3: new
 * connections of the pods through the tunnel are accepted only when (pod, destination) is in the name's set,
 * otherwise reset. Each component runs in this JVM with its sockets in its node's namespace.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class DnsPathLabIT {
  static final String EGRESS_IP = "198.18.0.130";
  static final String RESOLVER = "192.0.2.53";
  static final String ALLOWED = "api.payments.example";
  static final String WILDCARD = "*.cdn.payments.example";
  static final String BELOW_WILDCARD = "www.cdn.payments.example";
  static final String BLOCKED = "blocked.example";
  static final int PORT = 8443;
  static final Duration GRACE = Duration.ofSeconds(1);
  static final String GATEWAY = "payments";
  static final String CHECK = "LAB-DNS-CHECK";
  static final ObjectMapper JSON = new ObjectMapper();
  static final List<String> POOL = List.of("203.0.113.20", "203.0.113.21", "203.0.113.22", "203.0.113.23",
      "203.0.113.24", "203.0.113.25");
  static final List<String> CDN_POOL = List.of("203.0.113.30", "203.0.113.31", "203.0.113.32");
  static final List<String> BLOCKED_POOL = List.of("203.0.113.40", "203.0.113.41");

  @RegisterExtension
  static final NetworkLab lab = NetworkLab.withNodes(4).podsPerNode(1);

  static final Map<Integer, NodeDataplane> dataplanes = new HashMap<>();
  static final Map<Integer, DnsPath> paths = new HashMap<>();
  static final Map<Integer, SimpleMeterRegistry> metrics = new HashMap<>();
  static final Map<Integer, NodeGatewayState> states = new HashMap<>();
  static LabDnsServer dns;
  static byte[] key = new byte[32];
  static String client;
  static boolean netnet;

  static Kernel kernel(int node) {
    return new Kernel(lab.nsCommandPrefix(lab.node(node).ns()));
  }

  static NodeGatewayState part() {
    var s = new NodeGatewayState();
    s.failurePolicy = FailurePolicy.Drop;
    s.cidrs = List.of("0.0.0.0/0");
    s.excludedCidrs = List.of(NetworkLab.POD_CIDR);
    // With a port: a kernel without hash:net,net keeps the pairs in hash:ip,port,ip sets (see SetMembers).
    var https = List.of(new PortRange(Protocol.TCP, PORT, null));
    s.allow = List.of(new AllowEntry("198.51.100.0/24", null, List.of()), new AllowEntry(null, ALLOWED, https),
        new AllowEntry(null, WILDCARD, https));
    return s;
  }

  @BeforeAll
  static void start() throws Exception {
    if (!lab.started()) {
      return;
    }
    new java.security.SecureRandom().nextBytes(key);
    try (InputStream in = DnsPathLabIT.class.getResourceAsStream("/lab/dns_client.py")) {
      client = new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
    // The external host answers DNS on RESOLVER and takes connections on every answered address.
    var external = new StringBuilder("ip addr add " + RESOLVER + "/32 dev lo\n");
    for (String ip : concat(POOL, CDN_POOL, BLOCKED_POOL)) {
      external.append("ip addr add ").append(ip).append("/32 dev lo\n");
    }
    lab.exec(lab.externalNs(), "bash", "-c", external.toString());
    dns = new LabDnsServer(new Kernel(lab.nsCommandPrefix(lab.externalNs())), Map.of(
        ALLOWED, new LabDnsServer.Zone(null, POOL),
        BELOW_WILDCARD, new LabDnsServer.Zone("edge.provider.example", CDN_POOL),
        BLOCKED, new LabDnsServer.Zone(null, BLOCKED_POOL))).start(RESOLVER, PORT);

    LabPod a = lab.pod(1, 1);
    LabPod b = lab.pod(2, 1);
    LabNode gateway = lab.node(3);
    for (int n : List.of(1, 2)) {
      var director = part();
      director.steer.add(new NodeGatewayState.Steer(EGRESS_IP, gateway.name(), gateway.ip(),
          List.of(lab.pod(n, 1).ip())));
      states.put(n, director);
    }
    var peers = new NodeGatewayState.Peers();
    peers.members = lab.nodes().stream().map(n -> new NodeGatewayState.Member(n.name(), n.ip())).toList();
    peers.successions = List.of(new NodeGatewayState.Succession(EGRESS_IP, gateway.name(),
        List.of(lab.node(4).name())));
    var holder = part();
    holder.snat.add(new NodeGatewayState.Snat(EGRESS_IP, true, List.of(a.ip(), b.ip())));
    holder.peers = peers;
    states.put(3, holder);
    var standby = part();
    standby.peers = new NodeGatewayState.Peers();
    standby.peers.members = peers.members;
    standby.peers.successions = peers.successions;
    standby.peers.standby = List.of(new NodeGatewayState.Snat(EGRESS_IP, true, List.of(a.ip(), b.ip())));
    states.put(4, standby);

    for (int n = 1; n <= 4; n++) {
      var dp = new NodeDataplane(kernel(n), DataplaneSettings.defaults(lab.node(n).uplink()));
      dataplanes.put(n, dp);
      DnsPath path = newPath(n);
      dp.apply(path.addTo(Renderer.render(Map.of(GATEWAY, states.get(n)), dp.settings()), Defaults.TUNNEL_DEVICE));
    }
    // The sets the gateway role will create (made here until it does), on the holder and the standby: hash:net,net
    // where the kernel has it, else hash:ip,port,ip.
    netnet = supports(lab.node(3).ns(), "hash:net,net");
    String type = netnet ? "hash:net,net" : "hash:ip,port,ip";
    System.out.printf("names' sets: %s%n", type);
    for (int n : List.of(3, 4)) {
      for (String fqdn : List.of(ALLOWED, WILDCARD)) {
        lab.exec(lab.node(n).ns(), "ipset", "create", DestinationSets.fqdn(GATEWAY, fqdn), type, "timeout", "1");
      }
    }
    // The stand-in for the gateway's check: a new connection from the tunnel passes only with its pair in a set.
    String accept = "-A " + CHECK + " -m set --match-set %s " + (netnet ? "src,dst" : "src,dst,dst") + " -j ACCEPT\n";
    lab.exec(gateway.ns(), "bash", "-c", "iptables-restore --noflush <<EOF\n*filter\n:" + CHECK + " - [0:0]\n"
        + "-A FORWARD -i natgate0 -p tcp -m tcp --dport " + PORT + " -m conntrack --ctstate NEW -j " + CHECK + "\n"
        + accept.formatted(DestinationSets.fqdn(GATEWAY, ALLOWED))
        + accept.formatted(DestinationSets.fqdn(GATEWAY, WILDCARD))
        + "-A " + CHECK + " -p tcp -j REJECT --reject-with tcp-reset\nCOMMIT\nEOF\n");
  }

  static DnsPath newPath(int n) {
    var registry = new SimpleMeterRegistry();
    metrics.put(n, registry);
    var settings = DnsPath.Settings.defaults(new InetSocketAddress(RESOLVER, 53));
    DnsPath path = new DnsPath(lab.node(n).name(), lab.node(n).ip(), new DnsPath.Settings(settings.proxyPort(),
        settings.pairPort(), settings.upstream(), GRACE, settings.confirmTimeout()), kernel(n), registry);
    path.update(Map.of(GATEWAY, states.get(n)));
    paths.put(n, path.start(key));
    return path;
  }

  @AfterAll
  static void stop() {
    if (!lab.started()) {
      return;
    }
    // The stand-in first: its sets cannot go while it references them.
    lab.exec(lab.node(3).ns(), "bash", "-c", "iptables -D FORWARD -i natgate0 -p tcp -m tcp --dport " + PORT
        + " -m conntrack --ctstate NEW -j " + CHECK + "; iptables -F " + CHECK + "; iptables -X " + CHECK + "; true");
    paths.values().forEach(DnsPath::close);
    dataplanes.values().forEach(dp -> {
      dp.apply(KernelPlan.EMPTY);
      dp.close();
    });
    if (dns != null) {
      dns.close();
    }
  }

  static List<String> concat(List<String>... lists) {
    List<String> all = new ArrayList<>();
    for (List<String> l : lists) {
      all.addAll(l);
    }
    return all;
  }

  static JsonNode resolve(LabPod pod, String name, int count, boolean connect) {
    List<String> args = new ArrayList<>(List.of(lab.python(), "-c", client, "--server", RESOLVER, "--name", name,
        "--count", String.valueOf(count)));
    if (connect) {
      args.addAll(List.of("--connect-port", String.valueOf(PORT)));
    }
    try {
      return JSON.readTree(lab.exec(pod.ns(), args.toArray(String[]::new)));
    } catch (java.io.IOException e) {
      throw new IllegalStateException(e);
    }
  }

  /** The (pod, address) pairs of a set on a node, as ipset lists them ("198.19.1.11,203.0.113.20"). */
  static Set<String> pairs(int node, String fqdn) {
    Set<String> pairs = new TreeSet<>();
    for (String line : lab.exec(lab.node(node).ns(), "ipset", "list", DestinationSets.fqdn(GATEWAY, fqdn))
        .split("\n")) {
      // hash:net,net lists "pod,address timeout N", hash:ip,port,ip "pod,tcp:8443,address timeout N"
      var m = java.util.regex.Pattern.compile("(\\d+\\.\\d+\\.\\d+\\.\\d+),(?:\\w+:\\d+,)?(\\d+\\.\\d+\\.\\d+\\.\\d+)"
          + " timeout \\d+").matcher(line);
      if (m.matches()) {
        pairs.add(m.group(1) + "," + m.group(2));
      }
    }
    return pairs;
  }

  static boolean supports(String ns, String type) {
    try {
      lab.exec(ns, "ipset", "create", "natgate-probe", type, "timeout", "1");
      lab.exec(ns, "ipset", "destroy", "natgate-probe");
      return true;
    } catch (IllegalStateException e) {
      return false;
    }
  }

  static double rejected(int node, String reason) {
    var c = metrics.get(node).find("natgate_agent_dns_pairs_rejected_total").tag("reason", reason).counter();
    return c == null ? 0 : c.count();
  }

  @Test
  @Order(1)
  void everyAnsweredAddressIsAllowedForItsPodBeforeThePodGetsIt() throws Exception {
    // The redirect is written as iptables-save prints it: a repair finds nothing to change.
    for (int n : List.of(1, 2)) {
      assertThat(dataplanes.get(n).repair().changed()).as("drift on node %d", n).isFalse();
    }
    int count = 1000;
    long queriesBefore = dns.queries();
    var fromA = CompletableFuture.supplyAsync(() -> resolve(lab.pod(1, 1), ALLOWED, count, true));
    var fromB = CompletableFuture.supplyAsync(() -> resolve(lab.pod(2, 1), ALLOWED, count, true));
    for (JsonNode r : List.of(fromA.get(10, TimeUnit.MINUTES), fromB.get(10, TimeUnit.MINUTES))) {
      System.out.printf("%d answers, %d connections, %d refused, %d failed, errors %s, addresses %s%n",
          r.path("rcodes").path("0").asInt(), r.path("connected").asInt(), r.path("refused").asInt(),
          r.path("connect_failed").asInt(), r.path("errors"), r.path("addresses"));
      assertThat(r.path("rcodes").path("0").asInt()).as("answers").isEqualTo(count);
      assertThat(r.path("refused").asInt()).as("connections refused").isZero();
      assertThat(r.path("connect_failed").asInt()).as("connections failed otherwise").isZero();
      assertThat(r.path("connected").asInt()).as("connections").isEqualTo(2 * count);
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
  void aNameBelowAWildcardFollowsItsCnameChainAndANameNotAllowedAddsNothing() throws Exception {
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
  }

  @Test
  @Order(3)
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
  @Order(4)
  void forgedReplayedAndStrangerPairsAreRefusedAndCounted() throws Exception {
    String set = DestinationSets.fqdn(GATEWAY, ALLOWED);
    String pod = lab.pod(1, 1).ip();
    var pair = List.of(new PairMessage.Pair(pod, "203.0.113.99", 60));
    long seq = new SequenceClock().next(System.currentTimeMillis());
    byte[] genuine = new PairCodec(key).encode(new PairMessage.Pairs(lab.node(1).name() + "-test", seq, false,
        GATEWAY, ALLOWED, pair));
    byte[] otherKey = key.clone();
    otherKey[0] ^= 1;
    byte[] forged = new PairCodec(otherKey).encode(new PairMessage.Pairs(lab.node(1).name() + "-test", seq + 1,
        false, GATEWAY, ALLOWED, pair));
    byte[] stranger = new PairCodec(key).encode(new PairMessage.Pairs(lab.node(1).name() + "-test", seq + 2, false,
        GATEWAY, ALLOWED, List.of(new PairMessage.Pair(lab.pod(4, 1).ip(), "203.0.113.99", 60))));
    double mac = rejected(3, "mac");
    double replay = rejected(3, "replay");
    double strangers = rejected(3, "stranger");

    send(1, forged);
    await().atMost(Duration.ofSeconds(2)).until(() -> rejected(3, "mac") == mac + 1);
    send(1, genuine);
    await().atMost(Duration.ofSeconds(2)).until(() -> pairs(3, ALLOWED).contains(pod + ",203.0.113.99"));
    lab.exec(lab.node(3).ns(), "ipset", "del", set, netnet ? pod + ",203.0.113.99" : pod + ",tcp:" + PORT
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
    try (var ns = new NodeNamespace(kernel(node))) {
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
  @Order(5)
  void withTheProxyDownQueriesFailFastAndNothingLeaksThenWorkAgainWithoutTouchingThePod() {
    LabPod pod = lab.pod(1, 1);
    paths.remove(1).close(); // the agent stopped; its kernel state (the redirect) stays
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

    newPath(1); // the agent is back
    JsonNode up = resolve(pod, ALLOWED, 20, true);
    assertThat(up.path("rcodes").path("0").asInt()).isEqualTo(20);
    assertThat(up.path("connected").asInt()).isEqualTo(40);
  }

  @Test
  @Order(6)
  void latencyTheProxyAdds() {
    // pod 3-1 is not followed (node 3 SNATs only pods of nodes 1 and 2): it asks the resolver directly.
    DnsLatency.print(resolve(lab.pod(1, 1), ALLOWED, 500, false), resolve(lab.pod(3, 1), ALLOWED, 500, false));
  }
}
