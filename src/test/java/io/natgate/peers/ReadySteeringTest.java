package io.natgate.peers;

import static org.assertj.core.api.Assertions.assertThat;

import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.api.v1alpha1.NodeGatewayState.Member;
import io.natgate.dataplane.Changes;
import io.natgate.dataplane.DataplaneSettings;
import io.natgate.dataplane.KernelPlan;
import io.natgate.dataplane.Observed;
import io.natgate.dataplane.Renderer;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Group a (holder of IP), b and c (standbys); b's own pod 198.19.2.5 becomes selected. */
class ReadySteeringTest {
  static final String IP = "198.18.0.100";
  static final String POD = "198.19.2.5";
  static final DataplaneSettings SETTINGS = new DataplaneSettings("eth0", "natgate0", 4790, 0x0ff00000, 7400, 7400, 2);

  static NodeGatewayState part(List<String> steered) {
    var s = new NodeGatewayState();
    s.cidrs = List.of("0.0.0.0/0");
    s.peers = new NodeGatewayState.Peers();
    s.peers.members = List.of(new Member("a", "198.18.0.11"), new Member("b", "198.18.0.12"),
        new Member("c", "198.18.0.13"));
    s.peers.successions = List.of(new NodeGatewayState.Succession(IP, "a", List.of("b", "c")));
    s.peers.standby = List.of(new NodeGatewayState.Snat(IP, true, List.of("198.19.3.2")));
    if (!steered.isEmpty()) {
      s.steer.add(new NodeGatewayState.Steer(IP, "a", "198.18.0.11", steered));
    }
    return s;
  }

  static KernelPlan rendered(NodeGatewayState part, String self) {
    return Renderer.render(ReadySteering.with(Map.of("payments", part), self), SETTINGS);
  }

  @Test
  void aStandbysFirstSelectedPodIsOneSetMemberOnly() {
    KernelPlan before = rendered(part(List.of()), "b");
    KernelPlan after = rendered(part(List.of(POD)), "b");

    Changes changes = Changes.between(Observed.after(before, 1500), after, SETTINGS);

    assertThat(changes.iptables()).isEmpty();
    assertThat(changes.ipBefore()).isEmpty();
    assertThat(changes.ipAfter()).isEmpty();
    assertThat(changes.ipsetAfter()).isEmpty();
    assertThat(changes.ipsetBefore()).isEqualTo("add natgate-d-" + ipSetId() + " " + POD + "\n");
    // and the pod leaving again takes only that member out
    Changes back = Changes.between(Observed.after(after, 1500), before, SETTINGS);
    assertThat(back.iptables()).isEmpty();
    assertThat(back.ipBefore() + back.ipAfter() + back.ipsetBefore()).isEmpty();
    assertThat(back.ipsetAfter()).isEqualTo("del natgate-d-" + ipSetId() + " " + POD + "\n");
  }

  @Test
  void withoutItTheFirstPodNeedsRulesRoutesAndASet() {
    KernelPlan before = Renderer.render(Map.of("payments", part(List.of())), SETTINGS);
    KernelPlan after = Renderer.render(Map.of("payments", part(List.of(POD))), SETTINGS);

    Changes changes = Changes.between(Observed.after(before, 1500), after, SETTINGS);

    assertThat(changes.iptables()).isNotEmpty();
    assertThat(changes.ipBefore()).contains("rule add", "route");
  }

  @Test
  void theReadyEntryIsEmptyAndNamesTheHolder() {
    var ready = ReadySteering.with(Map.of("payments", part(List.of())), "b").get("payments");

    assertThat(ready.steer).singleElement().satisfies(st -> {
      assertThat(st.egressIP).isEqualTo(IP);
      assertThat(st.gatewayNode).isEqualTo("a");
      assertThat(st.gatewayNodeIP).isEqualTo("198.18.0.11");
      assertThat(st.sources).isEmpty();
    });
    assertThat(ready.peers).isEqualTo(part(List.of()).peers);
    assertThat(ready.snat).isEqualTo(part(List.of()).snat);
  }

  @Test
  void anEntryWithPodsStaysAsItIs() {
    assertThat(ReadySteering.with(Map.of("payments", part(List.of(POD))), "b").get("payments").steer)
        .isEqualTo(part(List.of(POD)).steer);
  }

  /** b takes the IP over (its pods SNATed, the address added): the steering stays, so no iptables run before it. */
  @Test
  void aTakeoverChangesNoRule() {
    NodeGatewayState standby = part(List.of(POD));
    NodeGatewayState holding = HoldDecision.withHolding(standby, Set.of(IP), "b");
    assertThat(holding.steer).as("HoldDecision steers none of its pods to an IP it holds").isEmpty();

    Changes takeover = Changes.between(Observed.after(rendered(HoldDecision.withHolding(standby, Set.of(), "b"), "b"),
        1500), rendered(holding, "b"), SETTINGS);

    assertThat(takeover.hold()).contains(IP);
    assertThat(takeover.iptables()).as("nat rules for the held IP only").allSatisfy(run ->
        assertThat(run).doesNotContain("MARK --set-xmark"));
    assertThat(takeover.ipBefore() + takeover.ipAfter()).doesNotContain("rule", "route");
    assertThat(takeover.ipsetAfter()).contains("del natgate-d-" + ipSetId() + " " + POD);
  }

  @Test
  void gatewaysWithoutAPeerGroupOrOfWhichThisNodeIsNoMemberAreLeftAlone() {
    NodeGatewayState small = part(List.of());
    small.peers = null;
    assertThat(ReadySteering.with(Map.of("payments", small), "b")).containsExactly(Map.entry("payments", small));
    assertThat(ReadySteering.with(Map.of("payments", part(List.of())), "d").get("payments").steer).isEmpty();
  }

  static String ipSetId() {
    return io.natgate.Sha256.hex("payments/" + IP, 4);
  }
}
