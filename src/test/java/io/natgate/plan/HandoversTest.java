package io.natgate.plan;

import static io.natgate.plan.Fixtures.cluster;
import static io.natgate.plan.Fixtures.egressNode;
import static io.natgate.plan.Fixtures.gateway;
import static io.natgate.plan.Fixtures.node;
import static io.natgate.plan.Fixtures.pod;
import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.Node;
import io.fabric8.kubernetes.api.model.NodeBuilder;
import io.fabric8.kubernetes.api.model.ObjectMetaBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.natgate.api.v1alpha1.Assignment;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.EgressGatewayStatus;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import io.natgate.api.v1alpha1.EgressNodeStateStatus;
import io.natgate.api.v1alpha1.NodeGatewayState;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/**
 * Planned moves, make-before-break: the plan is computed round after round as the reconciler does, each time from the
 * node states it wrote before, with what the agents report (their applied generation and the IPs they hold).
 */
class HandoversTest {
  static final Instant NOW = Instant.parse("2026-11-30T12:00:00Z");
  static final String OLD = "2026-11-20T00:00:00Z";
  static final String IP = "198.18.0.100";
  static final List<Pod> PODS = List.of(pod("pay", "a", "w1", "198.19.3.2", "Running", Map.of()),
      pod("pay", "b", "w1", "198.19.3.3", "Running", Map.of()), pod("pay", "c", "w1", "198.19.3.4", "Running", Map.of()));

  final List<Node> nodes = new ArrayList<>(List.of(egressNode("e1", "198.18.0.11", true),
      egressNode("e2", "198.18.0.12", true), node("w1", "198.18.0.13", true, Map.of())));
  final EgressGateway gw = gateway("pay", OLD, IP);
  /** The node states as the API server has them, by node; each write bumps its generation. */
  final Map<String, EgressNodeState> observed = new TreeMap<>();

  /** One reconcile: plans from what is observed, writes the states that differ and the status. */
  GatewayPlan reconcile(Set<String> live) {
    var c = cluster(nodes, PODS, List.of(gw));
    var snapshot = new ClusterSnapshot(c.nodes(), c.pods(), c.namespaceLabels(), c.gateways(), c.clusterCidrs(), live);
    GatewayPlan plan = GatewayPlanner.plan(gw, snapshot, PeerGroups.takeovers(observed), observed, NOW);
    plan.nodeStates().forEach((node, spec) -> {
      EgressNodeState st = observed.get(node);
      if (st == null || !spec.equals(st.getSpec())) {
        long generation = st == null ? 1 : st.getMetadata().getGeneration() + 1;
        EgressNodeState written = new EgressNodeState();
        written.setMetadata(new ObjectMetaBuilder().withName(node).withGeneration(generation).build());
        written.setSpec(spec);
        written.setStatus(st == null ? null : st.getStatus());
        observed.put(node, written);
      }
    });
    observed.keySet().removeIf(n -> !plan.nodeStates().containsKey(n));
    var status = new EgressGatewayStatus();
    status.assignments = plan.assignments();
    gw.setStatus(status);
    return plan;
  }

  /** The node's agent applied its current state and holds {@code held}. */
  void applied(String node, String... held) {
    EgressNodeState st = observed.get(node);
    var status = new EgressNodeStateStatus();
    status.appliedGeneration = st.getMetadata().getGeneration();
    status.held = held.length == 0 ? null : List.of(held);
    st.setStatus(status);
  }

  void settledOn(String holder) {
    Set<String> all = Set.of("e1", "e2", "w1");
    reconcile(all);
    observed.keySet().forEach(n -> applied(n, n.equals(holder) ? new String[] {IP} : new String[0]));
    assertThat(reconcile(all).assignments()).extracting(a -> a.node).containsExactly(holder);
  }

  void cordon(String name) {
    nodes.replaceAll(n -> n.getMetadata().getName().equals(name)
        ? new NodeBuilder(n).editOrNewSpec().withUnschedulable(true).endSpec().build() : n);
  }

  static boolean holdsAddress(EgressNodeStateSpec s, String ip) {
    return s != null && s.snat.stream().anyMatch(x -> ip.equals(x.egressIP) && x.holdAddress);
  }

  static List<String> releasing(EgressNodeStateSpec s) {
    return s.peers.successions.stream().map(x -> x.releasing == null ? "-" : x.releasing).toList();
  }

  @Test
  void aCordonedHolderKeepsItsIPUntilTheNewHolderReportsItThenReleasesIt() {
    gw.setStatus(new EgressGatewayStatus());
    gw.getStatus().assignments = List.of(new Assignment(IP, "e1", OLD));
    settledOn("e1");
    Set<String> all = Set.of("e1", "e2", "w1");
    cordon("e1");

    EgressGatewayStatus before = gw.getStatus();
    GatewayPlan move = reconcile(all);
    assertThat(move.assignments()).extracting(a -> a.node).containsExactly("e2");
    assertThat(StatusEvents.between(before, StatusCalculator.compute(gw, move, Map.of(), NOW), move))
        .extracting(StatusEvents.Event::message)
        .containsExactly(IP + " moved from node e1 to node e2: e1 is cordoned (kubectl cordon or drain)");
    assertThat(holdsAddress(move.nodeStates().get("e2"), IP)).as("the new holder is programmed").isTrue();
    assertThat(move.nodeStates().get("e1").snat).as("the old holder keeps its SNAT and address meanwhile")
        .containsExactly(new NodeGatewayState.Snat(IP, true, List.of("198.19.3.2", "198.19.3.3", "198.19.3.4")));
    move.nodeStates().values().forEach(s -> assertThat(releasing(s)).containsExactly("e1"));
    assertThat(move.nodeStates().get("e2").peers.standby).as("a cordoned node is nobody's standby").isEmpty();

    // Every node applied, but e2 does not report the IP yet (its peers' decision comes after the apply): kept.
    observed.keySet().forEach(n -> applied(n, n.equals("e1") ? new String[] {IP} : new String[0]));
    assertThat(reconcile(all).nodeStates().get("e1").snat).isNotEmpty();
    // e2 reports it: the handover ends, e1 releases.
    applied("e2", IP);
    GatewayPlan done = reconcile(all);
    assertThat(holdsAddress(done.nodeStates().get("e1"), IP)).isFalse();
    done.nodeStates().values().forEach(s -> assertThat(releasing(s)).containsExactly("-"));
    observed.keySet().forEach(n -> applied(n, n.equals("e2") ? new String[] {IP} : new String[0]));
    assertThat(reconcile(all).nodeStates()).as("steady: nothing more to write").isEqualTo(done.nodeStates());
  }

  @Test
  void aHandoverWaitsForEveryLiveNodeToApplyButNotForADeadOne() {
    gw.setStatus(new EgressGatewayStatus());
    gw.getStatus().assignments = List.of(new Assignment(IP, "e1", OLD));
    settledOn("e1");
    nodes.removeIf(n -> n.getMetadata().getName().equals("e1")); // the Node is deleted; its agent still runs
    Set<String> all = Set.of("e1", "e2", "w1");

    GatewayPlan move = reconcile(all);
    assertThat(move.assignments()).extracting(a -> a.node).containsExactly("e2");
    assertThat(holdsAddress(move.nodeStates().get("e1"), IP)).as("no longer a member: kept by the Lease rule")
        .isTrue();
    assertThat(move.nodeStates().get("e1").peers).isNull();
    applied("e1", IP);
    applied("e2", IP);
    assertThat(holdsAddress(reconcile(all).nodeStates().get("e1"), IP)).as("w1 has not applied yet").isTrue();
    assertThat(holdsAddress(reconcile(Set.of("e1", "e2")).nodeStates().get("e1"), IP))
        .as("w1's agent is dead: it holds nothing up").isFalse();
  }

  @Test
  void theIPOfADeadAgentIsMovedAtOnceNotHandedOver() {
    gw.setStatus(new EgressGatewayStatus());
    gw.getStatus().assignments = List.of(new Assignment(IP, "e1", OLD));
    settledOn("e1");
    cordon("e1");
    GatewayPlan move = reconcile(Set.of("e2", "w1"));
    assertThat(holdsAddress(move.nodeStates().get("e1"), IP)).isFalse();
    move.nodeStates().values().stream().filter(s -> s.peers != null)
        .forEach(s -> assertThat(releasing(s)).containsExactly("-"));
  }

  @Test
  void whenEveryCandidateIsCordonedTheIPStaysWhereItIs() {
    gw.setStatus(new EgressGatewayStatus());
    gw.getStatus().assignments = List.of(new Assignment(IP, "e1", OLD));
    settledOn("e1");
    cordon("e1");
    cordon("e2");
    assertThat(reconcile(Set.of("e1", "e2", "w1")).assignments()).extracting(a -> a.node).containsExactly("e1");
  }

  @Test
  void aRemovedIPIsKeptWithItsPodsUntilTheirNewIPIsAppliedEverywhere() {
    String second = "198.18.0.101";
    gw.getSpec().egressIPs = new ArrayList<>(List.of(IP, second));
    Set<String> all = Set.of("e1", "e2", "w1");
    reconcile(all);
    observed.keySet().forEach(n -> applied(n));
    GatewayPlan both = reconcile(all);
    Map<String, String> holders = new HashMap<>();
    both.assignments().forEach(a -> holders.put(a.egressIP, a.node));
    observed.keySet().forEach(n -> applied(n, holders.entrySet().stream().filter(e -> e.getValue().equals(n))
        .map(Map.Entry::getKey).toArray(String[]::new)));
    both = reconcile(all);
    String removedOn = holders.get(second);
    List<String> itsPods = both.nodeStates().get(removedOn).snat.stream().filter(s -> second.equals(s.egressIP))
        .findFirst().orElseThrow().sources;
    assertThat(itsPods).as("the pods are spread over both IPs").isNotEmpty();

    gw.getSpec().egressIPs = new ArrayList<>(List.of(IP));
    GatewayPlan removing = reconcile(all);
    assertThat(removing.nodeStates().get(removedOn).snat).as("kept with the pods it had")
        .contains(new NodeGatewayState.Snat(second, true, itsPods));
    assertThat(removing.nodeStates().get(holders.get(IP)).snat.stream().filter(s -> IP.equals(s.egressIP))
        .findFirst().orElseThrow().sources).as("and the remaining IP SNATs every pod already")
        .containsAll(itsPods);
    assertThat(removing.nodeStates().get(removedOn).peers.successions)
        .contains(new NodeGatewayState.Succession(second, removedOn, List.of(), removedOn));
    observed.keySet().forEach(n -> applied(n, holders.entrySet().stream().filter(e -> e.getValue().equals(n))
        .map(Map.Entry::getKey).toArray(String[]::new)));
    GatewayPlan removed = reconcile(all);
    assertThat(removed.nodeStates().values()).allSatisfy(s -> assertThat(holdsAddress(s, second)).isFalse());
  }

  @Test
  void anAddedIPTakesPodsOnlyOnceItsHolderReportsHoldingIt() {
    gw.setStatus(new EgressGatewayStatus());
    gw.getStatus().assignments = List.of(new Assignment(IP, "e1", OLD));
    settledOn("e1");
    String added = "198.18.0.101";
    gw.getSpec().egressIPs = new ArrayList<>(List.of(IP, added));
    Set<String> all = Set.of("e1", "e2", "w1");

    GatewayPlan adding = reconcile(all);
    assertThat(adding.assignments()).extracting(a -> a.node).containsExactly("e1", "e2");
    assertThat(adding.nodeStates().get("e2").snat).as("held first, with no pod mapped to it")
        .containsExactly(new NodeGatewayState.Snat(added, true, List.of()));
    assertThat(adding.nodeStates().get("w1").steer).extracting(s -> s.egressIP).containsOnly(IP);
    observed.keySet().forEach(n -> applied(n, n.equals("e1") ? new String[] {IP} : new String[0]));
    assertThat(reconcile(all).nodeStates().get("w1").steer).extracting(s -> s.egressIP).containsOnly(IP);

    applied("e2", added);
    GatewayPlan spread = reconcile(all);
    assertThat(spread.nodeStates().get("e2").snat.get(0).sources).as("now pods are mapped to it").isNotEmpty();
    assertThat(spread.nodeStates().get("w1").steer).extracting(s -> s.egressIP).contains(IP, added);
  }
}
