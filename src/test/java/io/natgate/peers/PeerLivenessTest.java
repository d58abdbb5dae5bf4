package io.natgate.peers;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.natgate.api.v1alpha1.NodeGatewayState;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/**
 * The egress IPs' lifetimes are renewed only while decisions to hold keep coming: a holder whose deciding stops (here
 * closed; on a node, a starved thread) is not renewed, so the kernel removes its addresses within their lifetime.
 */
class PeerLivenessTest {
  static final String IP = "198.18.0.100";

  @Test
  void holdingCountsAsDecidedLatelyOnlyWhileDecisionsKeepComing() {
    var part = new NodeGatewayState(); // no peer group: the Lease rule, held while the Lease is fresh
    part.snat.add(new NodeGatewayState.Snat(IP, true, List.of("198.19.3.11")));
    AtomicBoolean leaseFresh = new AtomicBoolean(false);
    var settings = new PeerLiveness.Settings(0, Duration.ofMillis(20), Duration.ofMillis(100), Duration.ofMillis(50));
    try (var liveness = new PeerLiveness("node-1", "198.18.0.11", settings, new SimpleMeterRegistry(),
        () -> List.of(part), leaseFresh::get, held -> { }, Set::of)) {
      liveness.start();
      assertThat(liveness.holdingDecidedLately()).as("holding nothing").isFalse();

      leaseFresh.set(true);
      await().atMost(Duration.ofSeconds(10)).until(() -> liveness.holding().contains(IP));
      assertThat(liveness.holdingDecidedLately()).isTrue();

      liveness.close(); // no decision any more: the holding is kept, but it is not renewed
      assertThat(liveness.holding()).contains(IP);
      await().atMost(Duration.ofSeconds(10)).until(() -> !liveness.holdingDecidedLately());
      assertThat(liveness.holding()).contains(IP);
    }
  }

  /**
   * A holder that stops hands its IP over in its farewell: the standby takes it at once and knows from whom (it
   * forwards that member what it does not know), and is told again when that member's next agent is heard, which ends
   * it. Three agents over UDP on loopback addresses: a holds the IP, b is its standby, w the witness.
   */
  @Test
  void theStandbyTakesAHandedOverIpAtOnceAndKnowsFromWhomUntilTheMembersNextAgentIsHeard() throws Exception {
    var settings = new PeerLiveness.Settings(24791, Duration.ofMillis(20), Duration.ofSeconds(2), Duration.ofSeconds(1));
    byte[] key = "0123456789abcdef0123456789abcdef".getBytes();
    List<Set<String>> bChanges = new CopyOnWriteArrayList<>();
    try (var w = agent("w", settings, held -> { });
        var b = agent("b", settings, bChanges::add)) {
      var a = agent("a", settings, held -> { });
      try {
        a.listen(key);
        w.listen(key);
        await().atMost(Duration.ofSeconds(20)).until(() -> a.holding().contains(IP));
        b.listen(key); // once a holds: b hears a's claim with its first heartbeat
        Thread.sleep(500);
        assertThat(b.holding()).isEmpty();

        a.leave(Set.of(IP));
        await("at once, not after the 3 s takeover time").atMost(Duration.ofSeconds(2))
            .until(() -> b.holding().contains(IP));
        assertThat(b.handedOver()).containsExactly(Map.entry(IP, "a"));
        assertThat(bChanges).last().isEqualTo(Set.of(IP));
      } finally {
        a.close();
      }
      int changes = bChanges.size();
      try (var next = agent("a", settings, held -> { })) {
        next.listen(key);
        await().atMost(Duration.ofSeconds(20)).until(() -> b.handedOver().isEmpty());
        assertThat(b.holding()).as("kept: the next agent does not take it back").containsExactly(IP);
        assertThat(bChanges).as("told, so that it renders the forwarding away").hasSizeGreaterThan(changes);
      }
    }
  }

  /** a (assigned), b, w on 127.0.0.1-3: a group of three, a's IP with b as its standby. */
  static PeerLiveness agent(String self, PeerLiveness.Settings settings, java.util.function.Consumer<Set<String>> onChange) {
    var part = new NodeGatewayState();
    part.peers = new NodeGatewayState.Peers();
    part.peers.members = List.of(new NodeGatewayState.Member("a", "127.0.0.1"),
        new NodeGatewayState.Member("b", "127.0.0.2"), new NodeGatewayState.Member("w", "127.0.0.3"));
    part.peers.successions = List.of(new NodeGatewayState.Succession(IP, "a", List.of("b")));
    if (self.equals("a")) {
      part.snat.add(new NodeGatewayState.Snat(IP, true, List.of("198.19.3.11")));
    } else if (self.equals("b")) {
      part.peers.standby = List.of(new NodeGatewayState.Snat(IP, true, List.of("198.19.3.11")));
    }
    String ip = part.peers.members.stream().filter(m -> m.name.equals(self)).findFirst().orElseThrow().ip;
    return new PeerLiveness(self, ip, settings, new SimpleMeterRegistry(), () -> List.of(part), () -> true, onChange,
        Set::of).start();
  }
}
