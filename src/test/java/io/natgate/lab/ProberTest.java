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
    var f = Prober.failures(List.of(straddling), List.of(SWITCH), List.of(), GIVEN_UP);
    assertThat(f.inFlight()).containsExactly(straddling);
    assertThat(f.other()).isEmpty();
  }

  @Test
  void aFailedProbeBegunAtOrAfterTheSwitchCounts() {
    Probe at = failed(0);
    Probe after = failed(3);
    var f = Prober.failures(List.of(at, after), List.of(SWITCH), List.of(), GIVEN_UP);
    assertThat(f.other()).containsExactly(at, after);
    assertThat(f.inFlight()).isEmpty();
  }

  /** Its process was started before the switch, but its shell connected after: a new connection, counted. */
  @Test
  void theMomentItBeganToConnectDecidesNotWhenItsProcessWasStarted() {
    Probe lateStart = failed(10); // at = switch - 10 ms
    assertThat(lateStart.at()).isBefore(SWITCH);
    assertThat(Prober.failures(List.of(lateStart), List.of(SWITCH), List.of(), GIVEN_UP).other())
        .containsExactly(lateStart);
  }

  @Test
  void aFailedProbeOverBeforeTheSwitchCounts() {
    Probe early = probe(-900, Duration.ofMillis(500), null);
    var f = Prober.failures(List.of(early), List.of(SWITCH), List.of(), GIVEN_UP);
    assertThat(f.other()).containsExactly(early);
  }

  @Test
  void anySwitchItStraddlesExcusesItAndWithoutSwitchesEveryFailureCounts() {
    Instant second = SWITCH.plusMillis(200);
    Probe straddlesSecond = failed(150);
    Probe afterBoth = failed(250);
    var f = Prober.failures(List.of(straddlesSecond, afterBoth), List.of(SWITCH, second), List.of(), GIVEN_UP);
    assertThat(f.inFlight()).containsExactly(straddlesSecond);
    assertThat(f.other()).containsExactly(afterBoth);
    assertThat(Prober.failures(List.of(straddlesSecond, afterBoth), List.of(), List.of(), GIVEN_UP).other())
        .containsExactly(straddlesSecond, afterBoth);
  }

  /** Break before make: the old holder released at the switch, the new one added the IP 200 ms later. */
  @Test
  void aFailedProbeBegunWhileNoNodeHeldTheIPCountsThoughItEndedAfterTheNewHolderTookIt() {
    Instant added = SWITCH.plusMillis(200);
    List<Prober.Unheld> gap = List.of(new Prober.Unheld(SWITCH, added));
    Probe beforeRelease = failed(-5);
    Probe inTheGap = failed(50);
    Probe afterTakeover = failed(205);
    var f = Prober.failures(List.of(beforeRelease, inTheGap, afterTakeover), List.of(SWITCH, added), gap, GIVEN_UP);
    assertThat(f.inFlight()).containsExactly(beforeRelease);
    assertThat(f.other()).containsExactly(inTheGap, afterTakeover);
  }

  @Test
  void aFailedProbeBegunAfterAnIPLostItsLastHolderForGoodCounts() {
    Probe after = failed(10);
    var f = Prober.failures(List.of(after), List.of(SWITCH, SWITCH.plusMillis(20)),
        List.of(new Prober.Unheld(SWITCH, Instant.MAX)), GIVEN_UP);
    assertThat(f.other()).containsExactly(after);
  }

  /** Reaped 1.5 s after it began (a starved machine), it had given up 900 ms after it began: before the switch. */
  @Test
  void aProbeBegunLongerThanItsTimeoutBeforeTheSwitchHadFailedAlready() {
    Probe stale = probe(-1000, Duration.ofMillis(1500), null);
    Probe recent = probe(-800, Duration.ofMillis(1500), null);
    var f = Prober.failures(List.of(stale, recent), List.of(SWITCH), List.of(), GIVEN_UP);
    assertThat(f.other()).containsExactly(stale);
    assertThat(f.inFlight()).containsExactly(recent);
  }

  @Test
  void answeredProbesAreNeitherWhereverTheyAre() {
    var f = Prober.failures(List.of(probe(-5, Duration.ofMillis(30), "198.18.0.100"),
        probe(5, Duration.ofMillis(3), "198.18.0.100")), List.of(SWITCH), List.of(), GIVEN_UP);
    assertThat(f.inFlight()).isEmpty();
    assertThat(f.other()).isEmpty();
  }
}
