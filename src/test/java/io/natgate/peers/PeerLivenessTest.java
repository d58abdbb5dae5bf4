package io.natgate.peers;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.natgate.api.v1alpha1.NodeGatewayState;
import java.time.Duration;
import java.util.List;
import java.util.Set;
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
}
