package io.natgate.cni;

import static org.assertj.core.api.Assertions.assertThat;

import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.peers.SequenceClock;
import io.natgate.peers.Signed;
import io.natgate.plan.IpAddresses;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/** What a gateway node takes from other nodes about new pods, and what it does with it. */
class EarlySourcesTest {
  static final String EGRESS = "198.18.0.130";
  static final String STANDBY_EGRESS = "198.18.0.131";
  static final String POD = "198.19.2.10";
  static final long NOW = 1_800_000_000_000L;

  /** The holder of EGRESS and standby of STANDBY_EGRESS, as rendered; the cluster's pods are 198.19.0.0/16. */
  static NodeGatewayState part() {
    var p = new NodeGatewayState();
    p.excludedCidrs = new ArrayList<>(List.of("198.19.0.0/16", "10.96.0.0/12"));
    p.snat.add(new NodeGatewayState.Snat(EGRESS, true, new ArrayList<>(List.of("198.19.1.5"))));
    p.snat.add(new NodeGatewayState.Snat(STANDBY_EGRESS, false, new ArrayList<>()));
    p.steer.add(new NodeGatewayState.Steer(STANDBY_EGRESS, "n2", "198.18.0.12", new ArrayList<>(List.of("198.19.1.7"))));
    p.peers = new NodeGatewayState.Peers();
    p.peers.members = List.of(new NodeGatewayState.Member("n1", "198.18.0.11"),
        new NodeGatewayState.Member("n2", "198.18.0.12"), new NodeGatewayState.Member("n3", "198.18.0.13"));
    p.peers.successions = List.of(new NodeGatewayState.Succession(EGRESS, "n1", List.of("n3")),
        new NodeGatewayState.Succession(STANDBY_EGRESS, "n2", List.of("n1")));
    return p;
  }

  static SourceMessage add(String sender, long seq, String egressIP, String pod) {
    return new SourceMessage(SourceMessage.Kind.ADD, sender, seq, 0, false, "gw", egressIP, pod);
  }

  static long seq(long millis) {
    return millis * SequenceClock.PER_MILLI;
  }

  @Test
  void acceptsPodNetworkAddressesForEgressIPsItHoldsOrStandsByFor() {
    assertThat(EarlySources.accepts(part(), EGRESS, POD)).isEqualTo(EarlySources.Verdict.ACCEPTED);
    assertThat(EarlySources.accepts(part(), STANDBY_EGRESS, POD)).isEqualTo(EarlySources.Verdict.ACCEPTED);
  }

  @Test
  void refusesEgressIPsItHasNoPartIn() {
    assertThat(EarlySources.accepts(part(), "198.18.0.140", POD)).isEqualTo(EarlySources.Verdict.STRANGER);
    assertThat(EarlySources.accepts(null, EGRESS, POD)).isEqualTo(EarlySources.Verdict.STRANGER);
    var director = part();
    director.snat.clear(); // only steers: its sets are not the gateway's
    assertThat(EarlySources.accepts(director, STANDBY_EGRESS, POD)).isEqualTo(EarlySources.Verdict.STRANGER);
  }

  @Test
  void refusesAddressesOutsideThePodNetworkAndEgressIPs() {
    // A node address, an external host, an egress IP itself: none may be opened through the gateway.
    for (String spoofed : List.of("198.18.0.12", "203.0.113.10", EGRESS, "0.0.0.0")) {
      assertThat(EarlySources.accepts(part(), EGRESS, spoofed)).as(spoofed).isEqualTo(EarlySources.Verdict.OUTSIDE);
    }
    var noRanges = part();
    noRanges.excludedCidrs = List.of();
    assertThat(EarlySources.accepts(noRanges, EGRESS, POD)).isEqualTo(EarlySources.Verdict.OUTSIDE);
  }

  @Test
  void refusesReplaysAndKeepsWhatItLearnedOnlyUntilItExpires() {
    var learned = new EarlySources(60_000);
    assertThat(learned.receive(add("n2", seq(NOW), EGRESS, POD), part(), NOW)).isEqualTo(EarlySources.Verdict.ACCEPTED);
    assertThat(learned.receive(add("n2", seq(NOW), EGRESS, "198.19.2.11"), part(), NOW))
        .isEqualTo(EarlySources.Verdict.REPLAY);
    // Recorded long ago (before this node restarted, say): far from this node's clock.
    assertThat(learned.receive(add("n3", seq(NOW - 60_000), EGRESS, "198.19.2.12"), part(), NOW))
        .isEqualTo(EarlySources.Verdict.REPLAY);
    assertThat(learned.receive(add("n2", seq(NOW) + 1, "198.18.0.140", "198.19.2.11"), part(), NOW))
        .isEqualTo(EarlySources.Verdict.STRANGER);
    assertThat(learned.live(NOW + 59_999)).containsExactly(new EarlySources.Source("gw", EGRESS, POD));
    assertThat(learned.live(NOW + 60_000)).isEmpty();
  }

  @Test
  void delRemovesWhatAddAdded() {
    var learned = new EarlySources(60_000);
    learned.receive(add("n2", seq(NOW), EGRESS, POD), part(), NOW);
    var del = new SourceMessage(SourceMessage.Kind.DEL, "n2", seq(NOW) + 1, 0, false, "gw", EGRESS, POD);
    assertThat(learned.receive(del, part(), NOW)).isEqualTo(EarlySources.Verdict.ACCEPTED);
    assertThat(learned.live(NOW)).isEmpty();
  }

  @Test
  void forgetsWhatTheOperatorConfirmed() {
    var learned = new EarlySources(60_000);
    learned.receive(add("n2", seq(NOW), EGRESS, POD), part(), NOW);
    learned.receive(add("n2", seq(NOW) + 1, EGRESS, "198.19.2.11"), part(), NOW);
    var listed = part();
    listed.snat.get(0).sources.add(POD);
    learned.confirmed(Map.of("gw", listed));
    assertThat(learned.live(NOW)).containsExactly(new EarlySources.Source("gw", EGRESS, "198.19.2.11"));
    // The operator drops the pod later (deleted, unselected): it stays out.
    assertThat(EarlySources.with(new TreeMap<>(Map.of("gw", part())), learned.live(NOW)).get("gw").snat.get(0).sources)
        .containsExactly("198.19.1.5", "198.19.2.11");
  }

  @Test
  void holdsAtMostMaxSources() {
    var learned = new EarlySources(60_000);
    long seq = seq(NOW);
    for (int i = 0; i < EarlySources.MAX; i++) {
      String pod = "198.19." + (i / 250) + "." + (i % 250 + 1);
      assertThat(learned.receive(add("n2", ++seq, EGRESS, pod), part(), NOW)).isEqualTo(EarlySources.Verdict.ACCEPTED);
    }
    assertThat(learned.receive(add("n2", ++seq, EGRESS, "198.19.200.1"), part(), NOW))
        .isEqualTo(EarlySources.Verdict.FULL);
    assertThat(learned.receive(add("n2", ++seq, EGRESS, "198.19.0.1"), part(), NOW)) // known: renewed
        .isEqualTo(EarlySources.Verdict.ACCEPTED);
    assertThat(learned.live(NOW)).hasSize(EarlySources.MAX);
  }

  @Test
  void learnedSourcesJoinTheSnatOfTheirEgressIPUnlessTheStateMentionsThePod() {
    Map<String, NodeGatewayState> parts = new TreeMap<>(Map.of("gw", part()));
    EarlySources.with(parts, List.of(new EarlySources.Source("gw", EGRESS, POD),
        new EarlySources.Source("gw", STANDBY_EGRESS, "198.19.2.20"),
        // the operator already steers this one elsewhere, and SNATs that one to EGRESS: both left as they are
        new EarlySources.Source("gw", EGRESS, "198.19.1.7"), new EarlySources.Source("gw", STANDBY_EGRESS, "198.19.1.5"),
        new EarlySources.Source("other", EGRESS, "198.19.2.30")));
    assertThat(parts).containsOnlyKeys("gw");
    assertThat(parts.get("gw").snat.get(0).sources).containsExactly("198.19.1.5", POD);
    assertThat(parts.get("gw").snat.get(1).sources).containsExactly("198.19.2.20");
    assertThat(parts.get("gw").steer.get(0).sources).containsExactly("198.19.1.7");
  }

  @Test
  void aDirectorTellsOnlyOfThePodsItSteersAheadOfTheOperatorToAHolder() {
    var operator = new NodeGatewayState();
    operator.steer.add(new NodeGatewayState.Steer(EGRESS, "n1", "198.18.0.11", new ArrayList<>(List.of("198.19.2.1"))));
    var merged = new NodeGatewayState();
    merged.steer.add(new NodeGatewayState.Steer(EGRESS, "n1", "198.18.0.11",
        new ArrayList<>(List.of("198.19.2.1", "198.19.2.2"))));
    // No node holds this one (failurePolicy Drop): nobody to tell.
    merged.steer.add(new NodeGatewayState.Steer("198.18.0.140", null, null, new ArrayList<>(List.of("198.19.2.3"))));
    var fresh = new NodeGatewayState(); // a gateway the operator has no state for on this node yet
    fresh.steer.add(new NodeGatewayState.Steer(STANDBY_EGRESS, "n2", null, new ArrayList<>(List.of("198.19.2.4"))));
    assertThat(LocalDecisions.steeredAhead(Map.of("gw", operator), Map.of("gw", merged, "other", fresh)))
        .containsExactlyInAnyOrder(new EarlySources.Source("gw", EGRESS, "198.19.2.2"),
            new EarlySources.Source("other", STANDBY_EGRESS, "198.19.2.4"));
  }

  @Test
  void relaysToTheOtherNodesOfTheEgressIPsSuccession() {
    assertThat(EarlySources.relayTo(part(), "n1", EGRESS)).containsExactly("198.18.0.13");
    assertThat(EarlySources.relayTo(part(), "n1", STANDBY_EGRESS)).containsExactly("198.18.0.12");
    var lease = part();
    lease.peers = null;
    assertThat(EarlySources.relayTo(lease, "n1", EGRESS)).isEmpty();
  }

  @Test
  void messagesRoundTripSignedAndForgeriesDoNotOpen() {
    Signed signed = new Signed("key-1".getBytes(StandardCharsets.UTF_8));
    var m = add("n2", seq(NOW), EGRESS, POD);
    byte[] wire = m.encode(signed);
    assertThat(SourceMessage.decode(signed, wire, wire.length)).contains(m);
    var ack = SourceMessage.ack("n1", 7).numbered(8);
    byte[] ackWire = ack.encode(signed);
    assertThat(SourceMessage.decode(signed, ackWire, ackWire.length)).contains(ack);
    assertThat(SourceMessage.decode(new Signed("key-2".getBytes(StandardCharsets.UTF_8)), wire, wire.length)).isEmpty();
    wire[wire.length - Signed.MAC_LENGTH - 1] ^= 1; // the pod's address changed on the way
    assertThat(SourceMessage.decode(signed, wire, wire.length)).isEmpty();
  }

  @Test
  void cidrMembership() {
    assertThat(IpAddresses.inCidr("198.19.255.1", "198.19.0.0/16")).isTrue();
    assertThat(IpAddresses.inCidr("198.20.0.1", "198.19.0.0/16")).isFalse();
    assertThat(IpAddresses.inCidr("198.18.0.5", "198.18.0.5")).isTrue();
    assertThat(IpAddresses.inCidr("198.18.0.6", "198.18.0.5/32")).isFalse();
    assertThat(IpAddresses.inCidr("8.8.8.8", "0.0.0.0/0")).isTrue();
  }
}
