package io.natgate.reconcile;

import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.coordination.v1.Lease;
import io.fabric8.kubernetes.api.model.coordination.v1.LeaseBuilder;
import io.natgate.plan.NodeReadiness;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import org.junit.jupiter.api.Test;

class AgentLivenessTest {
  static final Instant WALL = Instant.parse("2026-11-25T12:00:00Z");
  static final long MS = 1_000_000L;
  final AgentLiveness liveness = new AgentLiveness(Duration.ofMillis(900));

  static Lease lease(String node, Instant renewed) {
    return new LeaseBuilder().withNewMetadata().withName("natgate-agent-" + node)
        .addToLabels(NodeReadiness.NODE_LABEL, node).endMetadata()
        .withNewSpec().withRenewTime(renewed.atZone(ZoneOffset.UTC)).endSpec().build();
  }

  @Test
  void aliveWhileItsRenewTimeKeepsChangingDeadOnceItStopsForTheTimeout() {
    assertThat(liveness.observe(List.of(lease("a", WALL)), 0, WALL)).containsExactly("a");
    assertThat(liveness.observe(List.of(lease("a", WALL)), 899 * MS, WALL)).containsExactly("a");
    assertThat(liveness.observe(List.of(lease("a", WALL)), 900 * MS, WALL)).isEmpty();
    assertThat(liveness.observe(List.of(lease("a", WALL.plusMillis(200))), 1000 * MS, WALL)).containsExactly("a");
  }

  @Test
  void theOperatorsWallClockDoesNotMatterOnlyWhenItSawTheChange() {
    // The agent's clock is 5 s behind: by the wall clocks it would look dead; it renews every 200 ms.
    for (int i = 0; i < 10; i++) {
      Instant agentClock = WALL.minusSeconds(5).plusMillis(200L * i);
      assertThat(liveness.observe(List.of(lease("a", agentClock)), 200 * MS * i, WALL.plusMillis(200L * i)))
          .containsExactly("a");
    }
    // 5 s ahead, then it stops: dead one timeout after its last change was seen, not 5 s later.
    var ahead = new AgentLiveness(Duration.ofMillis(900));
    assertThat(ahead.observe(List.of(lease("b", WALL.plusSeconds(5))), 0, WALL)).containsExactly("b");
    assertThat(ahead.observe(List.of(lease("b", WALL.plusSeconds(5))), 950 * MS, WALL.plusMillis(950))).isEmpty();
  }

  @Test
  void aLeaseLongPastWhenFirstSeenIsDeadUntilItIsRenewed() {
    Instant old = WALL.minus(AgentLiveness.LONG_PAST).minusSeconds(1);
    assertThat(liveness.observe(List.of(lease("a", old)), 0, WALL)).isEmpty();
    assertThat(liveness.observe(List.of(lease("a", old)), 100 * MS, WALL)).isEmpty();
    assertThat(liveness.observe(List.of(lease("a", WALL)), 200 * MS, WALL)).containsExactly("a");
  }

  @Test
  void aDeletedLeaseIsForgottenAndItsNodeDead() {
    assertThat(liveness.observe(List.of(lease("a", WALL), lease("b", WALL)), 0, WALL)).containsExactly("a", "b");
    assertThat(liveness.observe(List.of(lease("b", WALL)), 100 * MS, WALL)).containsExactly("b");
    // Back (a new agent): first seen again, so alive from now.
    assertThat(liveness.observe(List.of(lease("a", WALL), lease("b", WALL)), 2000 * MS, WALL)).containsExactly("a");
  }

  @Test
  void whenNoLeaseChangesAtAllItsOwnViewIsStaleAndNobodyIsDeclaredDeadNotEvenWhenTheWatchResumesUnevenly() {
    // Two agents renewing every 200 ms, then the API server stops: no change at all from 400 ms on.
    assertThat(liveness.observe(List.of(lease("a", WALL), lease("b", WALL.minusMillis(100))), 0, WALL))
        .containsExactly("a", "b");
    assertThat(liveness.observe(List.of(lease("a", WALL.plusMillis(200)), lease("b", WALL.plusMillis(100))),
        200 * MS, WALL)).containsExactly("a", "b");
    assertThat(liveness.observe(List.of(lease("a", WALL.plusMillis(400)), lease("b", WALL.plusMillis(100))),
        400 * MS, WALL)).containsExactly("a", "b");
    // b last changed at 200 ms: by its own age it would be dead from 1100 ms; the view is stale from 850 ms.
    for (long t = 450; t <= 10_000; t += 50) {
      assertThat(liveness.observe(List.of(lease("a", WALL.plusMillis(400)), lease("b", WALL.plusMillis(100))),
          t * MS, WALL)).as("at %d ms", t).containsExactly("a", "b");
    }
    // The watch resumes with a's renewal; b reconnects on its own, 2.5 s later (seen so after an API server
    // restart on a loaded machine): b is not dead in between.
    for (long t = 10_050; t < 10_050 + AgentLiveness.RESUME_GRACE.toMillis(); t += 500) {
      assertThat(liveness.observe(List.of(lease("a", WALL.plusMillis(t)), lease("b", WALL.plusMillis(100))),
          t * MS, WALL)).as("at %d ms", t).containsExactly("a", "b");
    }
    // b really is dead: the grace after the watch resumed is over, with a still renewing.
    long over = 10_050 + AgentLiveness.RESUME_GRACE.toMillis();
    assertThat(liveness.observe(List.of(lease("a", WALL.plusMillis(over)), lease("b", WALL.plusMillis(100))),
        over * MS, WALL)).containsExactly("a");
  }

  @Test
  void oneOfTwoAgentsStoppingIsADeathNotAStaleView() {
    for (long t = 0; t <= 2000; t += 200) {
      var alive = liveness.observe(List.of(lease("a", WALL.plusMillis(t)), lease("b", WALL.plusMillis(Math.min(t, 400)))),
          t * MS, WALL);
      assertThat(alive).as("at %d ms", t).contains("a");
      assertThat(alive.contains("b")).as("b at %d ms", t).isEqualTo(t < 1300);
    }
  }
}
