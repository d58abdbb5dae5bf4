package io.natgate.peers;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.entry;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

class PeerViewTest {
  static final byte[] KEY = "0123456789abcdef0123456789abcdef".getBytes();
  static final long WALL = 1_800_000_000_000L;
  static final long MS = 1_000_000L;

  final PeerCodec codec = new PeerCodec(KEY);
  final PeerView view = new PeerView("b", Duration.ofMillis(200));

  PeerViewTest() {
    view.members(Set.of("a", "b", "c"), 0);
  }

  static long seq(long wallMillis) {
    return wallMillis * SequenceClock.PER_MILLI;
  }

  PeerView.Verdict receive(PeerMessage m, long nowNanos) {
    byte[] data = codec.encode(m);
    return view.receive(data, data.length, codec, nowNanos, WALL + nowNanos / MS);
  }

  @Test
  void aMessageRoundTripsAndTellsWhoIsHeardAndWhatTheyHold() {
    var m = new PeerMessage("a", seq(WALL), Set.of("198.18.0.100"),
        Map.of("b", new PeerMessage.Heard(seq(WALL) - 5, 20, Set.of()),
            "c", new PeerMessage.Heard(seq(WALL) - 7, 30, Set.of("198.18.0.101"))));
    byte[] data = codec.encode(m);
    assertThat(codec.decode(data, data.length)).contains(m);

    assertThat(receive(m, 0)).isEqualTo(PeerView.Verdict.ACCEPTED);
    var peers = view.peers(50 * MS);
    assertThat(peers.get("a")).isEqualTo(new PeerView.Peer(true, true, Set.of("b", "c"), 50, Set.of("198.18.0.100")));
    // c is known through a's gossip only: alive 30 ms before a's message arrived.
    assertThat(peers.get("c")).isEqualTo(new PeerView.Peer(false, false, Set.of(), 80, Set.of("198.18.0.101")));
    assertThat(view.peers(201 * MS).get("a").direct()).isFalse();
  }

  /**
   * A stopping member's farewell names the IPs it hands over (version 2 on the wire; a heartbeat stays version 1, what
   * the previous release reads): known as handed over by it until its next agent is heard, or the bound has passed.
   */
  @Test
  void aFarewellHandsItsIpsOverUntilTheMemberIsHeardAgainOrTheBoundHasPassed() {
    var heartbeat = new PeerMessage("a", seq(WALL), Set.of("198.18.0.100"), Map.of());
    var farewell = new PeerMessage("a", seq(WALL) + 1000, Set.of(), Map.of(), Set.of("198.18.0.100"));
    assertThat(codec.encode(heartbeat)[0]).isEqualTo((byte) 1);
    byte[] data = codec.encode(farewell);
    assertThat(data[0]).isEqualTo((byte) 2);
    assertThat(codec.decode(data, data.length)).contains(farewell);
    byte[] relabelled = codec.encode(heartbeat);
    relabelled[0] = 2;
    assertThat(codec.decode(relabelled, relabelled.length)).as("the version byte is signed too").isEmpty();

    Duration bound = Duration.ofSeconds(1);
    receive(heartbeat, 0);
    assertThat(view.handedOver(10 * MS, bound)).as("a heartbeat hands nothing over").isEmpty();
    receive(farewell, 20 * MS);
    assertThat(view.peers(30 * MS).get("a").holds()).as("holding nothing: the standby takes it").isEmpty();
    assertThat(view.handedOver(30 * MS, bound)).containsExactly(entry("198.18.0.100", "a"));
    assertThat(view.handedOver(500 * MS, bound)).as("silent since, and past the peer timeout")
        .containsExactly(entry("198.18.0.100", "a"));
    assertThat(view.handedOver(1021 * MS, bound)).as("past the bound").isEmpty();
    receive(new PeerMessage("a", seq(WALL) + 2000, Set.of(), Map.of()), 600 * MS);
    assertThat(view.handedOver(610 * MS, bound)).as("its next agent heard").isEmpty();
  }

  /** When a decision must be taken again without news: each threshold's crossing, for direct and gossiped news. */
  @Test
  void theNextChangeIsTheFirstThresholdAMembersSilenceCrossesAfterNow() {
    var ages = List.of(Duration.ofMillis(200), Duration.ofMillis(400));
    assertThat(view.nextChange(0, ages)).as("nobody heard of: silent since they became members").isEqualTo(200 * MS);
    // a heard at 0, and through it c, alive 30 ms before.
    receive(new PeerMessage("a", seq(WALL), Set.of(), Map.of("c", new PeerMessage.Heard(seq(WALL) - 7, 30,
        Set.of()))), 0);
    assertThat(view.nextChange(50 * MS, ages)).as("c silent for 200 ms").isEqualTo(170 * MS);
    assertThat(view.nextChange(170 * MS, ages)).as("a no longer fresh, and silent for 200 ms").isEqualTo(200 * MS);
    assertThat(view.nextChange(250 * MS, ages)).as("c silent for 400 ms").isEqualTo(370 * MS);
    assertThat(view.nextChange(380 * MS, ages)).as("a silent for 400 ms").isEqualTo(400 * MS);
    assertThat(view.nextChange(400 * MS, ages)).as("every threshold crossed").isEqualTo(Long.MAX_VALUE);
    receive(new PeerMessage("a", seq(WALL) + 1000, Set.of(), Map.of()), 390 * MS);
    assertThat(view.nextChange(400 * MS, ages)).as("news of a restarts its thresholds").isEqualTo(590 * MS);
  }

  /**
   * A member new to this node (a group it joins, out of the Lease rule) is silent since it joined, not since ever: a
   * standby that joined with the holder waits a peer timeout for it before taking its IP.
   */
  @Test
  void aNewMemberIsSilentSinceItJoinedAndTheGroupsAgeCountsFromTheChange() {
    view.members(Set.of("a", "b", "c", "d"), 1000 * MS);
    var peers = view.peers(1100 * MS);
    assertThat(peers.get("d").silentMillis()).isEqualTo(100);
    assertThat(peers.get("a").silentMillis()).as("a member since 0, never heard").isEqualTo(1100);
    assertThat(view.membersForMillis(1100 * MS)).isEqualTo(100);
    view.members(Set.of("a", "b", "c", "d"), 1200 * MS);
    assertThat(view.membersForMillis(1300 * MS)).as("the same members: not a change").isEqualTo(300);
    assertThat(view.nextChange(1100 * MS, List.of(Duration.ofMillis(200)))).isEqualTo(1200 * MS);
  }

  @Test
  void aWrongMacAStrangerAndAReplayAreRefusedAndChangeNothing() {
    var m = new PeerMessage("a", seq(WALL), Set.of("198.18.0.100"), Map.of());
    byte[] forged = codec.encode(m);
    forged[10] ^= 1;
    assertThat(view.receive(forged, forged.length, codec, 0, WALL)).isEqualTo(PeerView.Verdict.MAC);
    byte[] otherKey = new PeerCodec("another key, 32 bytes long......".getBytes()).encode(m);
    assertThat(view.receive(otherKey, otherKey.length, codec, 0, WALL)).isEqualTo(PeerView.Verdict.MAC);
    assertThat(view.receive(new byte[] {1, 2, 3}, 3, codec, 0, WALL)).isEqualTo(PeerView.Verdict.MAC);
    assertThat(view.peers(0).get("a").silentMillis()).as("never heard").isZero();

    assertThat(receive(new PeerMessage("mallory", seq(WALL), Set.of("198.18.0.100"), Map.of()), 0))
        .isEqualTo(PeerView.Verdict.STRANGER);
    assertThat(receive(new PeerMessage("b", seq(WALL), Set.of(), Map.of()), 0)).isEqualTo(PeerView.Verdict.STRANGER);

    assertThat(receive(m, 0)).isEqualTo(PeerView.Verdict.ACCEPTED);
    assertThat(receive(m, 10 * MS)).isEqualTo(PeerView.Verdict.REPLAY);
    assertThat(receive(new PeerMessage("a", seq(WALL) - 1, Set.of(), Map.of()), 10 * MS))
        .isEqualTo(PeerView.Verdict.REPLAY);
    assertThat(view.peers(10 * MS).get("a").holds()).containsExactly("198.18.0.100");
  }

  @Test
  void aRecordedMessageCannotBeReplayedToAReceiverThatRestarted() {
    var old = new PeerMessage("a", seq(WALL), Set.of(), Map.of());
    var restarted = new PeerView("b", Duration.ofMillis(200));
    restarted.members(Set.of("a", "b", "c"), 0);
    byte[] data = codec.encode(old);
    long later = WALL + PeerView.MAX_SKEW.toMillis() + 1;
    assertThat(restarted.receive(data, data.length, codec, 0, later)).isEqualTo(PeerView.Verdict.REPLAY);
  }

  @Test
  void sequenceNumbersGrowWithinAMillisecondAndAcrossARestart() {
    var clock = new SequenceClock();
    long first = clock.next(WALL);
    assertThat(clock.next(WALL)).isGreaterThan(first);
    assertThat(new SequenceClock().next(WALL + 1)).isGreaterThan(clock.next(WALL));
  }

  @Test
  void theFreshestNewsOfAMemberWinsWhateverPathItCameBy() {
    receive(new PeerMessage("a", seq(WALL), Set.of("198.18.0.100"), Map.of()), 0);
    // c says it heard a later, when a no longer held the IP.
    receive(new PeerMessage("c", seq(WALL) + 1, Set.of(),
        Map.of("a", new PeerMessage.Heard(seq(WALL) + 40_000, 10, Set.of()))), 100 * MS);
    assertThat(view.peers(100 * MS).get("a").holds()).isEmpty();
    assertThat(view.peers(100 * MS).get("a").silentMillis()).isEqualTo(10);
    // older gossip does not bring the claim back
    receive(new PeerMessage("c", seq(WALL) + 2, Set.of(),
        Map.of("a", new PeerMessage.Heard(seq(WALL), 90, Set.of("198.18.0.100")))), 110 * MS);
    assertThat(view.peers(110 * MS).get("a").holds()).isEmpty();
  }
}
