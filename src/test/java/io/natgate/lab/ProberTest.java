package io.natgate.lab;

import static org.assertj.core.api.Assertions.assertThat;

import io.natgate.lab.Prober.Probe;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** The split of failed probes around the moments an egress IP moved: only a probe that straddled one is excused. */
class ProberTest {
  static final Instant SWITCH = Instant.parse("2026-11-30T12:00:00Z");
  static final Duration GIVEN_UP = Duration.ofMillis(900);

  /** A probe whose shell began to connect {@code sentMs} from the switch ({@code at} 20 ms earlier: a slow start). */
  static Probe probe(long sentMs, Duration took, String source) {
    Instant sent = SWITCH.plusMillis(sentMs);
    return new Probe(sent.minusMillis(20), took.plusMillis(20), Optional.ofNullable(source), sent);
  }

  static Probe failed(long sentMs) {
    return probe(sentMs, GIVEN_UP, null);
  }

  @Test
  void aFailedProbeBegunBeforeTheSwitchAndEndedAfterItWasInFlight() {
    Probe straddling = failed(-5);
    var f = Prober.failures(List.of(straddling), List.of(SWITCH));
    assertThat(f.inFlight()).containsExactly(straddling);
    assertThat(f.other()).isEmpty();
  }

  @Test
  void aFailedProbeBegunAtOrAfterTheSwitchCounts() {
    Probe at = failed(0);
    Probe after = failed(3);
    var f = Prober.failures(List.of(at, after), List.of(SWITCH));
    assertThat(f.other()).containsExactly(at, after);
    assertThat(f.inFlight()).isEmpty();
  }

  /** Its process was started before the switch, but its shell connected after: a new connection, counted. */
  @Test
  void theMomentItBeganToConnectDecidesNotWhenItsProcessWasStarted() {
    Probe lateStart = failed(10); // at = switch - 10 ms
    assertThat(lateStart.at()).isBefore(SWITCH);
    assertThat(Prober.failures(List.of(lateStart), List.of(SWITCH)).other()).containsExactly(lateStart);
  }

  @Test
  void aFailedProbeOverBeforeTheSwitchCounts() {
    Probe early = probe(-900, Duration.ofMillis(500), null);
    var f = Prober.failures(List.of(early), List.of(SWITCH));
    assertThat(f.other()).containsExactly(early);
  }

  @Test
  void anySwitchItStraddlesExcusesItAndWithoutSwitchesEveryFailureCounts() {
    Instant second = SWITCH.plusMillis(200);
    Probe straddlesSecond = failed(150);
    Probe afterBoth = failed(250);
    var f = Prober.failures(List.of(straddlesSecond, afterBoth), List.of(SWITCH, second));
    assertThat(f.inFlight()).containsExactly(straddlesSecond);
    assertThat(f.other()).containsExactly(afterBoth);
    assertThat(Prober.failures(List.of(straddlesSecond, afterBoth), List.of()).other())
        .containsExactly(straddlesSecond, afterBoth);
  }

  @Test
  void answeredProbesAreNeitherWhereverTheyAre() {
    var f = Prober.failures(List.of(probe(-5, Duration.ofMillis(30), "198.18.0.100"),
        probe(5, Duration.ofMillis(3), "198.18.0.100")), List.of(SWITCH));
    assertThat(f.inFlight()).isEmpty();
    assertThat(f.other()).isEmpty();
  }
}
