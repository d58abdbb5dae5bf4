package io.natgate.reconcile;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.time.Instant;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

class FailoverClockTest {
  static final Instant T0 = Instant.parse("2026-11-30T01:00:00Z");
  static final String IP = "198.18.0.100";

  final FailoverClock clock = new FailoverClock();

  Map<String, Duration> observe(String before, String after, Set<String> failed, Instant diedAt, Set<String> applied,
      Instant now) {
    return clock.observe(before == null ? Map.of() : Map.of(IP, before), after == null ? Map.of() : Map.of(IP, after),
        (ip, node) -> failed.contains(node), node -> failed.contains(node) ? diedAt : null, applied::contains, now);
  }

  @Test
  void runsFromTheHolderJudgedDeadToTheNewHoldersAppliedReport() {
    Instant dead = T0.plusMillis(900);
    assertThat(observe("e1", "e2", Set.of("e1"), dead, Set.of(), T0.plusMillis(950))).as("not applied yet").isEmpty();
    assertThat(observe("e2", "e2", Set.of("e1"), dead, Set.of(), T0.plusMillis(1200))).isEmpty();
    assertThat(observe("e2", "e2", Set.of("e1"), dead, Set.of("e2"), T0.plusMillis(1400)))
        .isEqualTo(Map.of(IP, Duration.ofMillis(500)));
    assertThat(observe("e2", "e2", Set.of("e1"), dead, Set.of("e2"), T0.plusMillis(2000))).as("counted once").isEmpty();
  }

  @Test
  void aTakeoverBeforeTheOperatorJudgedTheHolderDeadStartsAtTheMove() {
    assertThat(observe("e1", "e2", Set.of("e1"), null, Set.of("e2"), T0)).isEqualTo(Map.of(IP, Duration.ZERO));
  }

  @Test
  void plannedMovesAndIPsThatMoveOnOrLoseTheirHolderAreNotTimed() {
    assertThat(observe("e1", "e2", Set.of(), null, Set.of("e2"), T0)).as("a planned move").isEmpty();
    assertThat(observe("e1", "e2", Set.of("e1"), T0, Set.of(), T0.plusSeconds(1))).isEmpty();
    assertThat(observe("e2", "e3", Set.of(), null, Set.of("e2", "e3"), T0.plusSeconds(2)))
        .as("moved on by plan before e2 applied: that failover never completed").isEmpty();
    assertThat(observe("e1", "e2", Set.of("e1"), T0, Set.of(), T0.plusSeconds(3))).isEmpty();
    assertThat(observe("e2", null, Set.of("e2"), T0, Set.of("e2"), T0.plusSeconds(4))).as("no holder left").isEmpty();
  }
}
