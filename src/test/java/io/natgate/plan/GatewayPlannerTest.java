package io.natgate.plan;

import static io.natgate.plan.Fixtures.cluster;
import static io.natgate.plan.Fixtures.egressNode;
import static io.natgate.plan.Fixtures.gateway;
import static io.natgate.plan.Fixtures.node;
import static io.natgate.plan.Fixtures.pod;
import static org.assertj.core.api.Assertions.assertThat;

import io.natgate.api.v1alpha1.AllowEntry;
import io.natgate.api.v1alpha1.Assignment;
import io.natgate.api.v1alpha1.PortRange;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.EgressGatewayStatus;
import io.natgate.api.v1alpha1.FailurePolicy;
import io.natgate.api.v1alpha1.NodeGatewayState;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class GatewayPlannerTest {
  private static final Instant NOW = Instant.parse("2026-11-25T12:00:00Z");
  private static final String OLD = "2026-11-20T00:00:00Z";

  private final List<io.fabric8.kubernetes.api.model.Node> nodes = List.of(
      egressNode("e1", "198.18.0.11", true), egressNode("e2", "198.18.0.12", true),
      node("w1", "198.18.0.13", true, Map.of()));

  @Test
  void gatewayNodeSnatsAllSelectedPodsAndDirectorsSteerTheirOwn() {
    EgressGateway gw = gateway("pay", OLD, "198.18.0.100");
    gw.setStatus(status(new Assignment("198.18.0.100", "e2", OLD)));
    var pods = List.of(
        pod("pay", "a", "w1", "198.19.1.2", "Running", Map.of()),
        pod("pay", "b", "e2", "198.19.2.2", "Running", Map.of()),
        pod("pay", "c", "w1", "198.19.1.3", "Succeeded", Map.of()),
        pod("ops", "d", "w1", "198.19.1.4", "Running", Map.of()));

    GatewayPlan plan = GatewayPlanner.plan(gw, cluster(nodes, pods, List.of(gw)), NOW);

    assertThat(plan.candidates()).containsExactly("e1", "e2");
    assertThat(plan.assignments()).containsExactly(new Assignment("198.18.0.100", "e2", OLD));
    assertThat(plan.selectedPods()).extracting(p -> p.getMetadata().getName()).containsExactly("a", "b");
    // e1 is e2's standby and w1 a witness: with three members, the group decides by quorum.
    assertThat(plan.nodeStates()).containsOnlyKeys("e1", "e2", "w1");
    var peers = plan.nodeStates().get("w1").peers;
    assertThat(peers.members).extracting(m -> m.name + "=" + m.ip)
        .containsExactly("e1=198.18.0.11", "e2=198.18.0.12", "w1=198.18.0.13");
    assertThat(peers.successions).containsExactly(
        new NodeGatewayState.Succession("198.18.0.100", "e2", List.of("e1")));
    assertThat(peers.standby).isEmpty();
    assertThat(plan.nodeStates().get("e1").snat).isEmpty();
    assertThat(plan.nodeStates().get("e1").peers.standby).containsExactly(new NodeGatewayState.Snat("198.18.0.100",
        true, List.of("198.19.1.2", "198.19.2.2")));
    NodeGatewayState gateway = plan.nodeStates().get("e2");
    assertThat(gateway.snat).containsExactly(new NodeGatewayState.Snat("198.18.0.100", true,
        List.of("198.19.1.2", "198.19.2.2")));
    assertThat(gateway.steer).isEmpty();
    assertThat(gateway.cidrs).containsExactly("0.0.0.0/0");
    assertThat(gateway.excludedCidrs).containsExactly("10.96.0.0/12");
    assertThat(gateway.failurePolicy).isEqualTo(FailurePolicy.Drop);
    assertThat(plan.nodeStates().get("w1").steer).containsExactly(
        new NodeGatewayState.Steer("198.18.0.100", "e2", "198.18.0.12", List.of("198.19.1.2")));
  }

  @Test
  void everyNodeWithAPartInTheGatewayCarriesItsAllowList() {
    EgressGateway gw = gateway("pay", OLD, "198.18.0.100");
    gw.setStatus(status(new Assignment("198.18.0.100", "e2", OLD)));
    var pods = List.of(pod("pay", "a", "w1", "198.19.1.2", "Running", Map.of()),
        pod("pay", "b", "w2", "198.19.4.2", "Running", Map.of()));
    var allNodes = new java.util.ArrayList<>(nodes);
    allNodes.add(node("w2", "198.18.0.14", true, Map.of()));
    allNodes.add(node("w3", "198.18.0.15", true, Map.of()));
    allNodes.add(node("w4", "198.18.0.16", true, Map.of()));

    GatewayPlan plan = GatewayPlanner.plan(gw, cluster(allNodes, pods, List.of(gw)), NOW);
    assertThat(plan.nodeStates().values()).allSatisfy(s -> assertThat(s.allow).isNull());

    var allow = List.of(AllowEntry.cidr("203.0.113.0/25", PortRange.tcp(80)), AllowEntry.fqdn("*.payments.example"));
    gw.getSpec().destinations.allow = allow;
    plan = GatewayPlanner.plan(gw, cluster(allNodes, pods, List.of(gw)), NOW);
    // holder e2, its standby e1, directors w1 and w2, and the witnesses: each with the same list; not every node.
    assertThat(plan.nodeStates().get("e2").snat).hasSize(1);
    assertThat(plan.nodeStates().get("e1").peers.standby).hasSize(1);
    assertThat(plan.nodeStates().get("w1").steer).hasSize(1);
    assertThat(plan.nodeStates().get("w2").steer).hasSize(1);
    assertThat(plan.nodeStates()).containsKeys("e1", "e2", "w1", "w2");
    assertThat(plan.nodeStates().values()).allSatisfy(s -> assertThat(s.allow).isEqualTo(allow));
    assertThat(plan.nodeStates().size()).isLessThan(allNodes.size());
  }

  @Test
  void theGatewayNodeLearnsThePodNamesForItsConnectionLogUnlessTheGatewayTurnsItOff() {
    EgressGateway gw = gateway("pay", OLD, "198.18.0.100");
    gw.setStatus(status(new Assignment("198.18.0.100", "e2", OLD)));
    var pods = List.of(pod("pay", "a", "w1", "198.19.1.2", "Running", Map.of()),
        pod("pay", "b", "e2", "198.19.2.2", "Running", Map.of()));

    GatewayPlan plan = GatewayPlanner.plan(gw, cluster(nodes, pods, List.of(gw)), NOW);
    assertThat(plan.nodeStates().get("e2").connectionLog.pods)
        .containsExactly(Map.entry("198.19.1.2", "pay/a"), Map.entry("198.19.2.2", "pay/b"));
    assertThat(plan.nodeStates().get("w1").connectionLog).as("directors translate nothing").isNull();

    gw.getSpec().connectionLog.enabled = false;
    plan = GatewayPlanner.plan(gw, cluster(nodes, pods, List.of(gw)), NOW);
    assertThat(plan.nodeStates().get("e2").connectionLog).isNull();
    assertThat(plan.nodeStates().get("e2").snat).hasSize(1);
  }

  @Test
  void inAGroupTooSmallForAQuorumANodeWhoseAgentStoppedRenewingLosesItsIPWhileItsKubeletStillSaysReady() {
    EgressGateway gw = gateway("pay", OLD, "198.18.0.100");
    gw.setStatus(status(new Assignment("198.18.0.100", "e2", OLD)));
    var c = cluster(nodes, List.of(), List.of(gw));
    // w1's agent is not live either: no witness, a group of two.
    var withoutE2 = new ClusterSnapshot(c.nodes(), c.pods(), c.namespaceLabels(), c.gateways(), c.clusterCidrs(),
        java.util.Set.of("e1"));

    GatewayPlan plan = GatewayPlanner.plan(gw, withoutE2, NOW);

    assertThat(plan.readyNodes()).containsExactly("e1");
    assertThat(plan.unready()).containsExactly(Map.entry("e2", "its natgate agent's Lease is not being renewed"));
    assertThat(plan.assignments()).containsExactly(new Assignment("198.18.0.100", "e1", NOW.toString()));
  }

  @Test
  void inAPeerGroupAHolderWhoseLeaseIsStaleKeepsItsIPItsPeersDecide() {
    EgressGateway gw = gateway("pay", OLD, "198.18.0.100");
    gw.setStatus(status(new Assignment("198.18.0.100", "e2", OLD)));
    var c = cluster(nodes, List.of(), List.of(gw));
    var withoutE2 = new ClusterSnapshot(c.nodes(), c.pods(), c.namespaceLabels(), c.gateways(), c.clusterCidrs(),
        java.util.Set.of("e1", "w1"));

    GatewayPlan plan = GatewayPlanner.plan(gw, withoutE2, NOW);

    assertThat(plan.unready()).containsOnlyKeys("e2");
    assertThat(plan.assignments()).containsExactly(new Assignment("198.18.0.100", "e2", OLD));
    assertThat(plan.nodeStates().get("e2").peers.successions)
        .containsExactly(new NodeGatewayState.Succession("198.18.0.100", "e2", List.of("e1")));
  }

  @Test
  void aTakeoverReportedByAnAgentIsAdoptedAndNotUndoneByStickiness() {
    EgressGateway gw = gateway("pay", OLD, "198.18.0.100");
    gw.setStatus(status(new Assignment("198.18.0.100", "e2", OLD)));
    var c = cluster(nodes, List.of(), List.of(gw));

    GatewayPlan plan = GatewayPlanner.plan(gw, c, Map.of("198.18.0.100", "e1"), NOW);

    assertThat(plan.assignments()).containsExactly(new Assignment("198.18.0.100", "e1", NOW.toString()));
    assertThat(StatusEvents.between(gw.getStatus(), StatusCalculator.compute(gw, plan, Map.of(), NOW), plan))
        .extracting(StatusEvents.Event::message)
        .containsExactly("198.18.0.100 moved from node e2 to node e1: its peers stopped hearing e2 and e1 took the IP over");
    assertThat(plan.nodeStates().get("e1").snat).extracting(s -> s.egressIP).containsExactly("198.18.0.100");
    assertThat(plan.nodeStates().get("e2").snat).isEmpty();
    assertThat(plan.nodeStates().get("e2").peers.successions)
        .containsExactly(new NodeGatewayState.Succession("198.18.0.100", "e1", List.of("e2")));
    // a takeover by a node that is no longer a candidate is not adopted
    GatewayPlan notCandidate = GatewayPlanner.plan(gw, c, Map.of("198.18.0.100", "w1"), NOW);
    assertThat(notCandidate.assignments()).containsExactly(new Assignment("198.18.0.100", "e2", OLD));
  }

  @Test
  void podsSpreadOverSeveralEgressIPsAndEachHolderSnatsItsShare() {
    EgressGateway gw = gateway("pay", OLD, "198.18.0.100", "198.18.0.101");
    var pods = java.util.stream.IntStream.range(2, 40)
        .mapToObj(i -> pod("pay", "p" + i, "w1", "198.19.1." + i, "Running", Map.of())).toList();

    GatewayPlan plan = GatewayPlanner.plan(gw, cluster(nodes, pods, List.of(gw)), NOW);

    assertThat(plan.assignments()).extracting(a -> a.node).containsExactlyInAnyOrder("e1", "e2");
    var perIP = plan.nodeStates().values().stream().flatMap(s -> s.snat.stream()).toList();
    assertThat(perIP).hasSize(2);
    assertThat(perIP.get(0).sources).isNotEmpty().doesNotContainAnyElementsOf(perIP.get(1).sources);
    assertThat(perIP.get(0).sources.size() + perIP.get(1).sources.size()).isEqualTo(38);
    // Directors steer each pod to the holder of its own IP.
    assertThat(plan.nodeStates().get("w1").steer).hasSize(2);
  }

  @Test
  void withoutEgressIPsOneReadyNodeUsesItsOwnIPAndEveryCandidateIPIsPublished() {
    EgressGateway gw = gateway("pay", OLD);
    GatewayPlan plan = GatewayPlanner.plan(gw, cluster(nodes,
        List.of(pod("pay", "a", "w1", "198.19.1.2", "Running", Map.of())), List.of(gw)), NOW);

    assertThat(plan.sourceIPs()).containsExactly("198.18.0.11", "198.18.0.12");
    assertThat(plan.assignments()).containsExactly(new Assignment("198.18.0.11", "e1", NOW.toString()));
    assertThat(plan.nodeStates().get("e1").snat.get(0).holdAddress).isFalse();
    assertThat(plan.nodeStates().get("w1").steer.get(0).gatewayNodeIP).isEqualTo("198.18.0.11");
  }

  @Test
  void noReadyGatewayLeavesDirectorsWithAGatewaylessSteerEntry() {
    EgressGateway gw = gateway("pay", OLD, "198.18.0.100");
    var down = List.of(egressNode("e1", "198.18.0.11", false), node("w1", "198.18.0.13", true, Map.of()));
    GatewayPlan plan = GatewayPlanner.plan(gw, cluster(down,
        List.of(pod("pay", "a", "w1", "198.19.1.2", "Running", Map.of())), List.of(gw)), NOW);

    assertThat(plan.readyNodes()).isEmpty();
    assertThat(plan.unassigned()).hasSize(1);
    assertThat(plan.nodeStates()).containsOnlyKeys("w1");
    assertThat(plan.nodeStates().get("w1").steer).containsExactly(
        new NodeGatewayState.Steer("198.18.0.100", null, null, List.of("198.19.1.2")));
  }

  @Test
  void theOlderGatewayWinsAContestedIPWhateverTheOrderOfTheList() {
    EgressGateway older = gateway("b-older", "2026-11-01T00:00:00Z", "198.18.0.100");
    EgressGateway newer = gateway("a-newer", "2026-11-02T00:00:00Z", "198.18.0.100", "198.18.0.101");
    var snapshot = cluster(nodes, List.of(), List.of(newer, older));

    assertThat(GatewayPlanner.plan(older, snapshot, NOW).conflicts()).isEmpty();
    GatewayPlan plan = GatewayPlanner.plan(newer, snapshot, NOW);
    assertThat(plan.conflicts()).containsExactly(Map.entry("198.18.0.100", "b-older"));
    assertThat(plan.sourceIPs()).containsExactly("198.18.0.101");
    assertThat(plan.assignments()).extracting(a -> a.egressIP).containsExactly("198.18.0.101");
  }

  @Test
  void aGatewayBeingDeletedNoLongerHoldsItsIPs() {
    EgressGateway older = gateway("older", "2026-11-01T00:00:00Z", "198.18.0.100");
    older.getMetadata().setDeletionTimestamp(OLD);
    EgressGateway newer = gateway("newer", "2026-11-02T00:00:00Z", "198.18.0.100");
    assertThat(GatewayPlanner.plan(newer, cluster(nodes, List.of(), List.of(older, newer)), NOW).conflicts()).isEmpty();
  }

  @Test
  void sinceChangesOnlyWhenTheNodeChanges() {
    EgressGateway gw = gateway("pay", OLD, "198.18.0.100");
    gw.setStatus(status(new Assignment("198.18.0.100", "e1", OLD)));
    var e1Down = List.of(egressNode("e1", "198.18.0.11", false), egressNode("e2", "198.18.0.12", true));
    assertThat(GatewayPlanner.plan(gw, cluster(e1Down, List.of(), List.of(gw)), NOW).assignments())
        .containsExactly(new Assignment("198.18.0.100", "e2", NOW.toString()));
    assertThat(GatewayPlanner.plan(gw, cluster(nodes, List.of(), List.of(gw)), NOW).assignments())
        .containsExactly(new Assignment("198.18.0.100", "e1", OLD));
  }

  @Test
  void hostNetworkPendingWithoutIPAndIPv6PodsAreNotSelected() {
    var hostNet = pod("pay", "h", "w1", "198.18.0.13", "Running", Map.of());
    hostNet.getSpec().setHostNetwork(true);
    var pods = List.of(hostNet, pod("pay", "noip", "w1", null, "Pending", Map.of()),
        pod("pay", "v6", "w1", "fd00::1", "Running", Map.of()),
        pod("pay", "pending", "w1", "198.19.1.9", "Pending", Map.of()),
        pod("pay", "failed", "w1", "198.19.1.8", "Failed", Map.of()));
    EgressGateway gw = gateway("pay", OLD, "198.18.0.100");
    assertThat(GatewayPlanner.plan(gw, cluster(nodes, pods, List.of(gw)), NOW).selectedPods())
        .extracting(p -> p.getMetadata().getName()).containsExactly("pending");
  }

  @Test
  void nodeLabelGoesToTheOldestMatchingGateway() {
    EgressGateway older = gateway("older", "2026-11-01T00:00:00Z", "198.18.0.100");
    EgressGateway newer = gateway("newer", "2026-11-02T00:00:00Z", "198.18.0.101");
    assertThat(NodeLabels.desiredGateway(nodes.get(0), List.of(newer, older))).isEqualTo("older");
    assertThat(NodeLabels.desiredGateway(nodes.get(2), List.of(newer, older))).isNull();
  }

  private static EgressGatewayStatus status(Assignment... assignments) {
    EgressGatewayStatus s = new EgressGatewayStatus();
    s.assignments = List.of(assignments);
    return s;
  }
}
