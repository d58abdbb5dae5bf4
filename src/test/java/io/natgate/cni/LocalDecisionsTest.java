package io.natgate.cni;

import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.Node;
import io.fabric8.kubernetes.api.model.Pod;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.EgressGatewayStatus;
import io.natgate.api.v1alpha1.FailurePolicy;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.dataplane.DataplaneSettings;
import io.natgate.dataplane.KernelPlan;
import io.natgate.dataplane.Renderer;
import io.natgate.plan.ClusterSnapshot;
import io.natgate.plan.Fixtures;
import io.natgate.plan.GatewayPlan;
import io.natgate.plan.GatewayPlanner;
import io.natgate.peers.HoldDecision;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import io.natgate.api.v1alpha1.AllowEntry;
import io.natgate.api.v1alpha1.PortRange;

class LocalDecisionsTest {
  static final Instant NOW = Instant.parse("2026-01-01T00:00:00Z");
  static final DataplaneSettings DP = DataplaneSettings.defaults("eth0");
  static final List<Node> NODES = List.of(Fixtures.egressNode("egress-1", "198.18.0.11", true),
      Fixtures.egressNode("egress-2", "198.18.0.12", true), Fixtures.node("worker", "198.18.0.13", true, Map.of()));
  static final List<String> NODE_NAMES = List.of("egress-1", "egress-2", "worker");

  /** 30 pods spread over the three nodes, in the selected namespace, and 3 in another one. */
  static List<Pod> pods() {
    List<Pod> pods = new ArrayList<>();
    for (int i = 0; i < 30; i++) {
      pods.add(Fixtures.pod("pay", "p" + i, NODE_NAMES.get(i % 3), "198.19." + (i % 3 + 1) + "." + (10 + i), "Running",
          Map.of("app", "api")));
    }
    for (int i = 0; i < 3; i++) {
      pods.add(Fixtures.pod("ops", "o" + i, NODE_NAMES.get(i), "198.19." + (i + 1) + ".200", "Running", Map.of()));
    }
    return pods;
  }

  /** The gateway as the agent sees it: with the status the operator wrote when it planned without these pods. */
  static EgressGateway plannedGateway(List<Node> nodes, FailurePolicy policy, String... egressIPs) {
    EgressGateway g = Fixtures.gateway("gw", "2026-01-01T00:00:00Z", egressIPs);
    g.getSpec().failurePolicy = policy;
    GatewayPlan before = GatewayPlanner.plan(g, Fixtures.cluster(nodes, List.of(), List.of(g)), NOW);
    g.setStatus(new EgressGatewayStatus());
    g.getStatus().assignments = before.assignments().stream().filter(a -> a.node != null).toList();
    return g;
  }

  static Map<String, NodeGatewayState> stateOf(GatewayPlan plan, String node) {
    return plan.nodeStates().containsKey(node) ? Map.of("gw", plan.nodeStates().get(node)) : Map.of();
  }

  static List<LocalDecisions.LocalPod> local(List<Pod> pods, String node) {
    return pods.stream().filter(p -> p.getSpec().getNodeName().equals(node))
        .map(p -> new LocalDecisions.LocalPod(p.getMetadata().getNamespace(), p.getMetadata().getName(),
            p.getStatus().getPodIP(), p.getMetadata().getLabels())).toList();
  }

  /** The kernel plan with set members sorted: their order means nothing to the kernel. */
  static KernelPlan render(Map<String, ? extends NodeGatewayState> states) {
    KernelPlan p = Renderer.render(states, DP);
    var sets = new TreeMap<String, KernelPlan.IpSet>();
    p.sets().forEach((n, s) -> sets.put(n, new KernelPlan.IpSet(n, s.type(), s.members().stream().sorted().toList())));
    return new KernelPlan(sets, p.rules(), p.held(), p.routes(), p.markRules(), p.tunnel(), p.sysctls());
  }

  /**
   * The operator's state without the other nodes' pods in its SNAT sets: an agent knows its own pods only, so a pod
   * steered here from another node is SNATed once the operator's state lists it (until then the tunnel drops it).
   */
  static Map<String, NodeGatewayState> onlyLocalSnat(Map<String, NodeGatewayState> states,
      List<LocalDecisions.LocalPod> local) {
    var ips = local.stream().map(LocalDecisions.LocalPod::ip).collect(Collectors.toSet());
    Map<String, NodeGatewayState> result = new TreeMap<>();
    states.forEach((gateway, s) -> {
      var copy = new io.natgate.api.v1alpha1.EgressNodeStateSpec("n", gateway, s);
      copy.snat = s.snat.stream().map(sn -> new NodeGatewayState.Snat(sn.egressIP, sn.holdAddress,
          sn.sources.stream().filter(ips::contains).toList())).toList();
      result.put(gateway, copy);
    });
    return result;
  }

  void assertTheOperatorConfirmsWithoutAChange(List<Node> nodes, FailurePolicy policy, String... egressIPs) {
    assertTheOperatorConfirmsWithoutAChange(nodes, plannedGateway(nodes, policy, egressIPs));
  }

  void assertTheOperatorConfirmsWithoutAChange(List<Node> nodes, EgressGateway g) {
    FailurePolicy policy = g.getSpec().failurePolicy;
    ClusterSnapshot without = Fixtures.cluster(nodes, List.of(), List.of(g));
    ClusterSnapshot with = Fixtures.cluster(nodes, pods(), List.of(g));
    GatewayPlan before = GatewayPlanner.plan(g, without, NOW);
    GatewayPlan after = GatewayPlanner.plan(g, with, NOW);
    for (String node : NODE_NAMES) {
      Map<String, NodeGatewayState> early = LocalDecisions.merge(node, stateOf(before, node), local(pods(), node),
          List.of(g), with.namespaceLabels(), with.clusterCidrs());
      assertThat(render(early)).as("%s, %s", node, policy).isEqualTo(render(onlyLocalSnat(stateOf(after, node),
          local(pods(), node))));
      // Once the operator's state has them, the agent adds nothing.
      Map<String, NodeGatewayState> confirmed = LocalDecisions.merge(node, stateOf(after, node), local(pods(), node),
          List.of(g), with.namespaceLabels(), with.clusterCidrs());
      assertThat(render(confirmed)).isEqualTo(render(stateOf(after, node)));
    }
  }

  @Test
  void startingPodsGetWhatTheOperatorsStateWillSayOnEveryNode() {
    assertTheOperatorConfirmsWithoutAChange(NODES, FailurePolicy.Drop, "198.18.0.100", "198.18.0.101");
  }

  @Test
  void aGatewayWithAnAllowListKeepsItOnEveryNode() {
    EgressGateway g = plannedGateway(NODES, FailurePolicy.Drop, "198.18.0.100");
    g.getSpec().destinations.allow = List.of(AllowEntry.cidr("203.0.113.0/25", PortRange.tcp(80)),
        AllowEntry.fqdn("api.payments.example"));
    assertTheOperatorConfirmsWithoutAChange(NODES, g);
    // A node the operator has not written a state for yet starts from the spec, allow list included.
    var merged = LocalDecisions.merge("worker", Map.of(), local(pods(), "worker"), List.of(g),
        Fixtures.cluster(NODES, List.of(), List.of(g)).namespaceLabels(), List.of());
    assertThat(merged.get("gw").allow).isEqualTo(g.getSpec().destinations.allow);
  }

  @Test
  void aGatewayUsingItsNodesOwnAddressToo() {
    assertTheOperatorConfirmsWithoutAChange(NODES, FailurePolicy.Drop);
  }

  @Test
  void withNoReadyGatewayNodeDropPoliciesDropAndAllowPoliciesLeaveThePodAlone() {
    List<Node> noneReady = List.of(Fixtures.egressNode("egress-1", "198.18.0.11", false),
        Fixtures.egressNode("egress-2", "198.18.0.12", false), Fixtures.node("worker", "198.18.0.13", true, Map.of()));
    assertTheOperatorConfirmsWithoutAChange(noneReady, FailurePolicy.Drop, "198.18.0.100");
    assertTheOperatorConfirmsWithoutAChange(noneReady, FailurePolicy.Allow, "198.18.0.100");
    EgressGateway g = plannedGateway(noneReady, FailurePolicy.Drop, "198.18.0.100");
    var merged = LocalDecisions.merge("worker", Map.of(), local(pods(), "worker"), List.of(g),
        Fixtures.cluster(noneReady, List.of(), List.of(g)).namespaceLabels(), List.of());
    assertThat(merged.get("gw").steer).singleElement().satisfies(s -> {
      assertThat(s.gatewayNode).isNull();
      assertThat(s.sources).hasSize(10);
    });
  }

  @Test
  void selectionsNameTheGatewayAndTheEgressIPOfSelectedPodsOnly() {
    EgressGateway g = plannedGateway(NODES, FailurePolicy.Drop, "198.18.0.100", "198.18.0.101");
    var labels = Fixtures.cluster(NODES, List.of(), List.of(g)).namespaceLabels();
    GatewayPlan after = GatewayPlanner.plan(g, Fixtures.cluster(NODES, pods(), List.of(g)), NOW);
    Map<String, String> operatorsChoice = new TreeMap<>();
    after.nodeStates().values().forEach(s -> s.snat.forEach(sn -> sn.sources.forEach(ip -> operatorsChoice.put(ip,
        sn.egressIP))));
    for (String node : NODE_NAMES) {
      for (LocalDecisions.LocalPod pod : local(pods(), node)) {
        var selections = LocalDecisions.selections(pod, List.of(g), labels);
        if (pod.namespace().equals("ops")) {
          assertThat(selections).isEmpty();
        } else {
          assertThat(selections).containsExactly(new LocalDecisions.Selection("gw", operatorsChoice.get(pod.ip())));
        }
      }
    }
    assertThat(operatorsChoice.values().stream().collect(Collectors.toSet())).hasSize(2);
  }

  /**
   * A standby that took the IP over by quorum (the status still names the old holder): its new pods are SNATed with
   * its other pods, not steered back to the address it holds itself, where they would get no answer until the
   * operator adopts it.
   */
  @Test
  void aStandbyThatTookTheIpOverSnatsItsNewPodsInsteadOfSteeringThem() {
    EgressGateway g = plannedGateway(NODES, FailurePolicy.Drop, "198.18.0.100");
    String ip = "198.18.0.100";
    String holder = g.getStatus().assignments.get(0).node;
    String standby = holder.equals("egress-1") ? "egress-2" : "egress-1";
    var labels = Fixtures.cluster(NODES, List.of(), List.of(g)).namespaceLabels();
    NodeGatewayState state = GatewayPlanner.plan(g, Fixtures.cluster(NODES, List.of(), List.of(g)), NOW)
        .nodeStates().get(standby);
    assertThat(state.peers.standby).extracting(s -> s.egressIP).containsExactly(ip);
    var ownPods = local(pods(), standby).stream().filter(p -> p.namespace().equals("pay"))
        .map(LocalDecisions.LocalPod::ip).toList();

    var waiting = LocalDecisions.merge(standby, Map.of("gw", HoldDecision.withHolding(state, Set.of(), standby)),
        local(pods(), standby), List.of(g), labels, List.of()).get("gw");
    assertThat(waiting.steer).as("not holding: steered to the holder").singleElement().satisfies(st -> {
      assertThat(st.gatewayNode).isEqualTo(holder);
      assertThat(st.sources).containsExactlyInAnyOrderElementsOf(ownPods);
    });

    var holding = LocalDecisions.merge(standby, Map.of("gw", HoldDecision.withHolding(state, Set.of(ip), standby)),
        local(pods(), standby), List.of(g), labels, List.of()).get("gw");
    assertThat(holding.steer).as("holding: nothing steered").isEmpty();
    assertThat(holding.snat).singleElement().satisfies(sn -> {
      assertThat(sn.egressIP).isEqualTo(ip);
      assertThat(sn.holdAddress).isTrue();
      assertThat(sn.sources).containsExactlyInAnyOrderElementsOf(ownPods);
    });
  }

  @Test
  void theOperatorsStatesAreNotModified() {
    EgressGateway g = plannedGateway(NODES, FailurePolicy.Drop, "198.18.0.100");
    GatewayPlan before = GatewayPlanner.plan(g, Fixtures.cluster(NODES, List.of(), List.of(g)), NOW);
    String holder = g.getStatus().assignments.get(0).node;
    var state = before.nodeStates().get(holder);
    var copy = new io.natgate.api.v1alpha1.EgressNodeStateSpec(holder, "gw", state);
    LocalDecisions.merge(holder, Map.of("gw", state), local(pods(), holder), List.of(g),
        Fixtures.cluster(NODES, List.of(), List.of(g)).namespaceLabels(), List.of());
    assertThat(new io.natgate.api.v1alpha1.EgressNodeStateSpec(holder, "gw", state)).isEqualTo(copy);
  }

  /**
   * A pod told to its gateway and then unselected (or gone) before the operator listed it is withdrawn (a DEL, so
   * that no standby keeps SNATing it, cut off, until the source expires); one the operator steers now is not.
   */
  @Test
  void toldSourcesSteeredNowhereAreWithdrawn() {
    var unselected = new EarlySources.Source("gw", "198.18.0.100", "198.19.2.12");
    var listed = new EarlySources.Source("gw", "198.18.0.100", "198.19.2.13");
    var otherGateway = new EarlySources.Source("other", "198.18.0.101", "198.19.2.14");
    var part = new NodeGatewayState();
    part.steer.add(new NodeGatewayState.Steer("198.18.0.100", "egress-1", "198.18.0.11", List.of("198.19.2.13")));
    part.steer.add(new NodeGatewayState.Steer(null, null, null, List.of("198.19.2.14"))); // no holder: dropped here

    assertThat(LocalDecisions.withdrawn(Set.of(unselected, listed, otherGateway), Map.of("gw", part)))
        .containsExactlyInAnyOrder(unselected, otherGateway);
    assertThat(LocalDecisions.withdrawn(Set.of(listed), Map.of("gw", part))).isEmpty();
  }
}
