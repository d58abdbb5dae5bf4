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
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

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
  /** The selected pods (on w1 unless a test says otherwise). */
  List<Pod> pods = PODS;
  /** What each agent applied last: its kernel. */
  final Map<String, EgressNodeStateSpec> kernel = new TreeMap<>();
  /** The node states as the API server has them, by node; each write bumps its generation. */
  final Map<String, EgressNodeState> observed = new TreeMap<>();

  /** One reconcile: plans from what is observed, writes the states that differ and the status. */
  GatewayPlan reconcile(Set<String> live) {
    var c = cluster(nodes, pods, List.of(gw));
    var snapshot = new ClusterSnapshot(c.nodes(), c.pods(), c.namespaceLabels(), c.gateways(), c.clusterCidrs(), live);
    GatewayPlan plan = GatewayPlanner.plan(gw, snapshot, PeerGroups.takeovers(observed), observed, NOW);
    plan.nodeStates().values().forEach(spec -> spec.snat.forEach(sn -> assertThat(sn.sources).as("%s SNATs them to "
        + "%s: its connection log names them", spec.nodeName, sn.egressIP).allSatisfy(ip -> assertThat(
            spec.connectionLog == null ? Map.<String, String>of() : spec.connectionLog.pods).containsKey(ip))));
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
    kernel.put(node, st.getSpec());
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
    assertThat(steered(removing, second)).as("w1 steers them there until the remaining IP's holder SNATs them")
        .containsExactlyElementsOf(itsPods);
    observed.keySet().forEach(n -> applied(n, holders.entrySet().stream().filter(e -> e.getValue().equals(n))
        .map(Map.Entry::getKey).toArray(String[]::new)));
    GatewayPlan moving = reconcile(all);
    assertThat(steered(moving, IP)).as("then to the remaining IP").containsAll(itsPods);
    assertThat(moving.nodeStates().get(removedOn).snat).as("still kept: w1 has not applied that")
        .contains(new NodeGatewayState.Snat(second, true, itsPods));
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
    List<String> moving = snatted(spread, "e2", added);
    assertThat(moving).as("now pods are mapped to it, and its holder SNATs them first").isNotEmpty();
    assertPodsMoveMakeBeforeBreak(moving, "e1", IP, "e2", added);
  }

  /**
   * The pods of {@code moving} (on w1) go from the old IP to the new one in three writes, each waiting for the one
   * before it to be applied: the new holder SNATs them (just written), then w1 steers them to the new IP, then the old
   * holder stops SNATing them. A write applied before the one it waits for would drop their new connections.
   */
  void assertPodsMoveMakeBeforeBreak(List<String> moving, String oldHolder, String oldIP, String newHolder,
      String newIP) {
    Set<String> all = Set.of("e1", "e2", "w1");
    GatewayPlan first = reconcile(all);
    assertThat(snatted(first, newHolder, newIP)).containsAll(moving);
    assertThat(steered(first, newIP)).as("w1 steers them as before").doesNotContainAnyElementsOf(moving);
    assertThat(steered(first, oldIP)).containsAll(moving);
    assertThat(snatted(first, oldHolder, oldIP)).as("the old holder SNATs them as before").containsAll(moving);
    applied(oldHolder, oldIP);
    applied("w1");
    assertThat(steered(reconcile(all), newIP)).as("the new holder has not applied yet").isEmpty();

    applied(newHolder, newIP);
    GatewayPlan second = reconcile(all);
    assertThat(steered(second, newIP)).as("applied there: w1 steers them to the new IP").containsAll(moving);
    assertThat(snatted(second, oldHolder, oldIP)).as("the old holder keeps them meanwhile").containsAll(moving);
    applied(oldHolder, oldIP);
    applied(newHolder, newIP);
    assertThat(snatted(reconcile(all), oldHolder, oldIP)).as("w1 has not applied yet").containsAll(moving);

    applied("w1");
    GatewayPlan done = reconcile(all);
    assertThat(snatted(done, oldHolder, oldIP)).as("applied on w1: the old holder lets them go")
        .doesNotContainAnyElementsOf(moving);
    assertThat(steered(done, oldIP)).doesNotContainAnyElementsOf(moving);
    observed.keySet().forEach(n -> applied(n, n.equals(oldHolder) ? new String[] {oldIP}
        : n.equals(newHolder) ? new String[] {newIP} : new String[0]));
    assertThat(reconcile(all).nodeStates()).as("steady: nothing more to write").isEqualTo(done.nodeStates());
  }

  List<String> snatted(GatewayPlan plan, String node, String ip) {
    EgressNodeStateSpec s = plan.nodeStates().get(node);
    return s == null ? List.of() : s.snat.stream().filter(x -> ip.equals(x.egressIP) && x.holdAddress)
        .flatMap(x -> x.sources.stream()).toList();
  }

  /** The pods w1 steers to {@code ip}. */
  List<String> steered(GatewayPlan plan, String ip) {
    return plan.nodeStates().get("w1").steer.stream().filter(x -> ip.equals(x.egressIP))
        .flatMap(x -> x.sources.stream()).toList();
  }

  static List<List<String>> applyOrders() {
    return List.of(List.of("e1", "e2", "w1"), List.of("e1", "w1", "e2"), List.of("e2", "e1", "w1"),
        List.of("e2", "w1", "e1"), List.of("w1", "e1", "e2"), List.of("w1", "e2", "e1"));
  }

  /**
   * Pods on every node (the holders' own too), an egress IP added, then removed again; the agents apply each write
   * in the given order, one at a time. After every single apply, every pod's new connection finds its SNAT: none is
   * dropped because one node applied before another.
   */
  @ParameterizedTest
  @MethodSource("applyOrders")
  void podsMovingBetweenEgressIPsAlwaysHaveAWayOutWhateverOrderTheAgentsApplyIn(List<String> order) {
    List<Pod> spread = new ArrayList<>();
    for (String node : List.of("e1", "e2", "w1")) {
      for (int i = 0; i < 4; i++) {
        int host = 10 * (1 + List.of("e1", "e2", "w1").indexOf(node)) + i;
        spread.add(pod("pay", node + "-" + i, node, "198.19.3." + host, "Running", Map.of()));
      }
    }
    pods = spread;
    gw.setStatus(new EgressGatewayStatus());
    gw.getStatus().assignments = List.of(new Assignment(IP, "e1", OLD));
    settledOn("e1");
    String second = "198.18.0.101";
    gw.getSpec().egressIPs = new ArrayList<>(List.of(IP, second));
    int writes = untilSteady(order);
    assertThat(gw.getStatus().assignments).extracting(a -> a.node).as("the IP held stays where it is")
        .containsExactly("e1", "e2");
    assertThat(kernel.get("e2").snat.stream().filter(x -> second.equals(x.egressIP)).findFirst().orElseThrow()
        .sources).as("pods moved to the new IP").isNotEmpty();
    gw.getSpec().egressIPs = new ArrayList<>(List.of(IP));
    writes += untilSteady(order);
    assertThat(kernel.values()).allSatisfy(k -> assertThat(holdsAddress(k, second)).isFalse());
    System.out.printf("apply order %s: %d writes%n", order, writes);
  }

  /** Reconciles and lets the agents apply in {@code order}, checking after each apply, until nothing changes. */
  int untilSteady(List<String> order) {
    Set<String> all = Set.of("e1", "e2", "w1");
    int writes = 0;
    for (int round = 0; round < 20; round++) {
      reconcile(all);
      List<String> behind = order.stream().filter(n -> observed.containsKey(n) && (observed.get(n).getStatus() == null
          || !java.util.Objects.equals(observed.get(n).getStatus().appliedGeneration,
              observed.get(n).getMetadata().getGeneration())))
          .toList();
      if (behind.isEmpty()) {
        return writes;
      }
      writes += behind.size();
      for (String node : behind) {
        applied(node, observed.get(node).getSpec().snat.stream().filter(x -> x.holdAddress).map(x -> x.egressIP)
            .toArray(String[]::new));
        assertEveryPodHasAWayOut();
      }
    }
    throw new AssertionError("not steady after 20 rounds");
  }

  /** Each pod's node steers it to an IP whose node SNATs it, or SNATs it itself (as applied). */
  void assertEveryPodHasAWayOut() {
    for (Pod p : pods) {
      String ip = p.getStatus().getPodIP();
      EgressNodeStateSpec home = kernel.get(p.getSpec().getNodeName());
      NodeGatewayState.Steer steer = home == null ? null
          : home.steer.stream().filter(x -> x.sources.contains(ip)).findFirst().orElse(null);
      EgressNodeStateSpec exit = steer == null ? home : kernel.get(steer.gatewayNode);
      assertThat(exit != null && exit.snat.stream().anyMatch(x -> x.holdAddress && x.sources.contains(ip)
          && (steer == null || x.egressIP.equals(steer.egressIP))))
          .as("%s (on %s) has a way out (steered: %s)", ip, p.getSpec().getNodeName(),
              steer == null ? "no" : steer.egressIP + " at " + steer.gatewayNode).isTrue();
    }
  }
}
