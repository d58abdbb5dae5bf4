package io.natgate.dns;

import static org.assertj.core.api.Assertions.assertThat;

import io.natgate.api.v1alpha1.AllowEntry;
import io.natgate.api.v1alpha1.FailurePolicy;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.dataplane.Hook;
import io.natgate.dataplane.KernelPlan;
import io.natgate.peers.PeerView;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class DnsRoutesTest {
  static final String FQDN = "api.payments.example";

  static NodeGatewayState withNames(String... fqdns) {
    var s = new NodeGatewayState();
    s.failurePolicy = FailurePolicy.Drop;
    s.allow = new java.util.ArrayList<>(List.of(new AllowEntry("198.51.100.0/24", null, List.of())));
    for (String f : fqdns) {
      s.allow.add(new AllowEntry(null, f, List.of()));
    }
    return s;
  }

  /** node-2 holds 198.18.0.100 for pods 198.19.1.11 and .12; node-3 stands by; node-1 is a witness. */
  static NodeGatewayState holder() {
    var s = withNames(FQDN);
    s.snat.add(new NodeGatewayState.Snat("198.18.0.100", true, List.of("198.19.1.11", "198.19.2.11")));
    s.peers = new NodeGatewayState.Peers();
    s.peers.members = List.of(new NodeGatewayState.Member("node-1", "198.18.0.11"),
        new NodeGatewayState.Member("node-2", "198.18.0.12"), new NodeGatewayState.Member("node-3", "198.18.0.13"));
    s.peers.successions = List.of(new NodeGatewayState.Succession("198.18.0.100", "node-2", List.of("node-3")));
    return s;
  }

  @Test
  void followsSteeredAndSnatedPodsOfGatewaysWithNamesOnly() {
    var director = withNames(FQDN);
    director.steer.add(new NodeGatewayState.Steer("198.18.0.100", "node-2", "198.18.0.12", List.of("198.19.1.11")));
    director.steer.add(new NodeGatewayState.Steer("198.18.0.101", null, null, List.of("198.19.1.12")));
    var cidrOnly = withNames();
    cidrOnly.steer.add(new NodeGatewayState.Steer("198.18.0.102", "node-2", "198.18.0.12", List.of("198.19.1.13")));
    var noList = new NodeGatewayState();
    noList.steer.add(new NodeGatewayState.Steer("198.18.0.103", "node-2", "198.18.0.12", List.of("198.19.1.14")));

    var routes = DnsRoutes.byPod(Map.of("a", director, "b", cidrOnly, "c", noList, "d", holder()));
    assertThat(routes.keySet()).containsExactly("198.19.1.11", "198.19.1.12", "198.19.2.11");
    assertThat(routes.get("198.19.1.11")).containsExactly(
        new DnsRoutes.Route("a", List.of(FQDN), FailurePolicy.Drop, "198.18.0.100", false),
        new DnsRoutes.Route("d", List.of(FQDN), FailurePolicy.Drop, "198.18.0.100", true));
    // Its egress IP has no holder: nowhere to allow the answer.
    assertThat(routes.get("198.19.1.12")).containsExactly(
        new DnsRoutes.Route("a", List.of(FQDN), FailurePolicy.Drop, null, false));
  }

  @Test
  void acceptsPairsOnlyForItsOwnOrStandbySourcesAndAllowedNames() {
    assertThat(DnsRoutes.accepts(holder(), FQDN, List.of("198.19.1.11", "198.19.2.11"))).isTrue();
    assertThat(DnsRoutes.accepts(holder(), FQDN, List.of("198.19.1.11", "198.19.9.9"))).isFalse();
    assertThat(DnsRoutes.accepts(holder(), "other.example", List.of("198.19.1.11"))).isFalse();
    assertThat(DnsRoutes.accepts(null, FQDN, List.of("198.19.1.11"))).isFalse();
    var standby = withNames(FQDN);
    standby.peers = holder().peers;
    standby.peers.standby = List.of(new NodeGatewayState.Snat("198.18.0.100", true, List.of("198.19.1.11")));
    assertThat(DnsRoutes.accepts(standby, FQDN, List.of("198.19.1.11"))).isTrue();
  }

  @Test
  void relaysToTheRestOfTheSuccessionOfThePodsEgressIP() {
    assertThat(DnsRoutes.relayTo(holder(), "node-2", List.of("198.19.1.11"))).containsExactly("198.18.0.13");
    assertThat(DnsRoutes.relayTo(holder(), "node-2", List.of("198.19.7.7"))).isEmpty();
    var leaseRule = withNames(FQDN);
    leaseRule.snat.add(new NodeGatewayState.Snat("198.18.0.100", true, List.of("198.19.1.11")));
    assertThat(DnsRoutes.relayTo(leaseRule, "node-2", List.of("198.19.1.11"))).isEmpty();
  }

  @Test
  void guardRefusesReplaysStrangersAndOldNumbers() {
    var guard = new PairGuard();
    long now = 1_800_000_000_000L;
    long seq = now * 1000;
    Map<String, NodeGatewayState> states = Map.of("gw", holder());
    var pair = new PairMessage.Pair("198.19.1.11", "203.0.113.20", 8);
    assertThat(guard.check(new PairMessage.Pairs("node-1", seq, false, "gw", FQDN, List.of(pair)), states::get, now))
        .isEqualTo(PeerView.Verdict.ACCEPTED);
    assertThat(guard.check(new PairMessage.Pairs("node-1", seq, false, "gw", FQDN, List.of(pair)), states::get, now))
        .isEqualTo(PeerView.Verdict.REPLAY);
    assertThat(guard.check(new PairMessage.Pairs("node-1", seq - 5, false, "gw", FQDN, List.of(pair)), states::get,
        now)).isEqualTo(PeerView.Verdict.REPLAY);
    // A fresh sender, but its clock is 31 s off: a message recorded long ago.
    assertThat(guard.check(new PairMessage.Pairs("node-3", (now - 31_000) * 1000, false, "gw", FQDN, List.of(pair)),
        states::get, now)).isEqualTo(PeerView.Verdict.REPLAY);
    var stranger = new PairMessage.Pair("198.19.9.9", "203.0.113.20", 8);
    assertThat(guard.check(new PairMessage.Pairs("node-1", seq + 1, false, "gw", FQDN, List.of(stranger)),
        states::get, now)).isEqualTo(PeerView.Verdict.STRANGER);
    assertThat(guard.check(new PairMessage.Pairs("node-1", seq + 2, false, "other-gw", FQDN, List.of(pair)),
        states::get, now)).isEqualTo(PeerView.Verdict.STRANGER);
    assertThat(guard.check(new PairMessage.Pairs("node-1", seq + 3, false, "gw", FQDN, List.of(pair)), states::get,
        now)).isEqualTo(PeerView.Verdict.ACCEPTED);
  }

  @Test
  void codecRoundTripsAndRefusesAnotherKeyOrATamperedByte() {
    byte[] key = new byte[32];
    key[0] = 7;
    var codec = new PairCodec(key);
    var m = new PairMessage.Pairs("node-1", 42, true, "gw", "*.payments.example",
        List.of(new PairMessage.Pair("198.19.1.11", "203.0.113.20", 8), new PairMessage.Pair("198.19.1.11",
            "255.255.255.254", 4_000_000_000L)));
    byte[] wire = codec.encode(m);
    assertThat(codec.decode(wire, wire.length)).contains(m);
    var ack = new PairMessage.Ack("node-2", 43, 42);
    byte[] ackWire = codec.encode(ack);
    assertThat(codec.decode(ackWire, ackWire.length)).contains(ack);
    byte[] other = key.clone();
    other[0] = 8;
    assertThat(new PairCodec(other).decode(wire, wire.length)).isEmpty();
    wire[10] ^= 1;
    assertThat(codec.decode(wire, wire.length)).isEqualTo(Optional.empty());
    // The largest message fits a datagram the peers' socket takes.
    var full = new PairMessage.Pairs("node-with-a-long-name-" + "x".repeat(40), 1, false, "g".repeat(63),
        "a".repeat(253), java.util.Collections.nCopies(PairCodec.MAX_PAIRS, new PairMessage.Pair("198.19.1.11",
            "203.0.113.20", 8)));
    assertThat(codec.encode(full).length).isLessThanOrEqualTo(io.natgate.peers.PeerCodec.MAX_LENGTH);
  }

  @Test
  void redirectsTheFollowedPodsQueriesToTheProxyAndNothingWithoutThem() {
    var director = withNames(FQDN);
    director.steer.add(new NodeGatewayState.Steer("198.18.0.100", "node-2", "198.18.0.12",
        List.of("198.19.1.12", "198.19.1.11")));
    KernelPlan plan = DnsRedirect.addTo(KernelPlan.EMPTY, Map.of("gw", director), "198.18.0.11", 4792, "natgate0");
    assertThat(plan.sets().get(DnsRedirect.SET).members()).containsExactly("198.19.1.11", "198.19.1.12");
    assertThat(plan.rules().get(Hook.NAT_PREROUTING)).containsExactly(
        "-A NATGATE-PREROUTING ! -i natgate0 -p udp -m set --match-set natgate-dns src -m udp --dport 53 -j DNAT "
            + "--to-destination 198.18.0.11:4792",
        "-A NATGATE-PREROUTING ! -i natgate0 -p tcp -m set --match-set natgate-dns src -m tcp --dport 53 -j DNAT "
            + "--to-destination 198.18.0.11:4792");
    assertThat(DnsRedirect.addTo(KernelPlan.EMPTY, Map.of("gw", withNames()), "198.18.0.11", 4792, "natgate0"))
        .isSameAs(KernelPlan.EMPTY);
  }
}
