package io.natgate.plan;

import static io.natgate.plan.Fixtures.cluster;
import static io.natgate.plan.Fixtures.egressNode;
import static io.natgate.plan.Fixtures.gateway;
import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.Condition;
import io.fabric8.kubernetes.api.model.LabelSelectorBuilder;
import io.fabric8.kubernetes.api.model.Node;
import io.fabric8.kubernetes.api.model.ObjectMetaBuilder;
import io.natgate.api.v1alpha1.AllowEntry;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.PortRange;
import io.natgate.api.v1alpha1.ResolvedName;
import io.natgate.api.v1alpha1.EgressGatewayStatus;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import io.natgate.api.v1alpha1.EgressNodeStateStatus;
import io.natgate.api.v1alpha1.NodeGatewayState;
import java.time.Instant;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class StatusCalculatorTest {
  private static final Instant T0 = Instant.parse("2026-11-25T12:00:00Z");
  private static final String CREATED = "2026-11-20T00:00:00Z";

  static Stream<Arguments> readiness() {
    return Stream.of(
        Arguments.of("no candidate", List.of(), "False", "NoMatchingNodes", "True"),
        Arguments.of("no ready candidate", List.of(egressNode("e1", "198.18.0.11", false)), "False", "NoReadyNode", "True"),
        Arguments.of("one of two down", List.of(egressNode("e1", "198.18.0.11", true),
            egressNode("e2", "198.18.0.12", false)), "True", "Ready", "True"),
        Arguments.of("all ready", List.of(egressNode("e1", "198.18.0.11", true)), "True", "Ready", "False"));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("readiness")
  void readyAndDegradedFollowTheNodes(String why, List<Node> nodes, String ready, String reason, String degraded) {
    EgressGateway gw = gateway("pay", CREATED, "198.18.0.100");
    EgressGatewayStatus status = compute(gw, nodes, Map.of());
    assertThat(condition(status, "Ready")).extracting(Condition::getStatus, Condition::getReason)
        .containsExactly(ready, reason);
    assertThat(condition(status, "Degraded").getStatus()).isEqualTo(degraded);
    assertThat(status.observedGeneration).isEqualTo(1L);
  }

  @Test
  void theAllowListsNamesShowWhatTheGatewayNodesCountedTheLargestAndLatest() {
    EgressGateway gw = gateway("pay", CREATED, "198.18.0.100");
    List<Node> nodes = List.of(egressNode("e1", "198.18.0.11", true), egressNode("e2", "198.18.0.12", true));
    assertThat(compute(gw, nodes, Map.of()).resolvedNames).as("no allow list").isEmpty();
    gw.getSpec().destinations.allow = List.of(AllowEntry.cidr("203.0.113.0/25"));
    assertThat(compute(gw, nodes, Map.of()).resolvedNames).as("no names in it").isEmpty();

    gw.getSpec().destinations.allow = List.of(AllowEntry.fqdn("api.payments.example"), AllowEntry.cidr("192.0.2.0/24"),
        AllowEntry.fqdn("*.cdn.example", PortRange.tcp(443)), AllowEntry.fqdn("api.payments.example", PortRange.tcp(1)));
    assertThat(compute(gw, nodes, Map.of()).resolvedNames).as("nobody counted yet").containsExactly(
        new ResolvedName("api.payments.example", 0, null), new ResolvedName("*.cdn.example", 0, null));

    var holder = reported("e1", new ResolvedName("api.payments.example", 7, "2026-11-25T12:00:05Z"),
        new ResolvedName("*.cdn.example", 2, "2026-11-25T11:00:00Z"));
    var standby = reported("e2", new ResolvedName("api.payments.example", 3, "2026-11-25T12:00:09Z"));
    assertThat(compute(gw, nodes, Map.of("e1", holder, "e2", standby)).resolvedNames).containsExactly(
        new ResolvedName("api.payments.example", 7, "2026-11-25T12:00:09Z"),
        new ResolvedName("*.cdn.example", 2, "2026-11-25T11:00:00Z"));
  }

  private static EgressNodeState reported(String node, ResolvedName... names) {
    EgressNodeState state = new EgressNodeState();
    state.setMetadata(new ObjectMetaBuilder().withName(EgressNodeState.nameFor("pay", node)).build());
    state.setStatus(new EgressNodeStateStatus());
    state.getStatus().resolvedNames = List.of(names);
    return state;
  }

  @Test
  void invalidSelectorOperatorIsReportedWithItsField() {
    EgressGateway gw = gateway("pay", CREATED, "198.18.0.100");
    gw.getSpec().sources.podSelector = new LabelSelectorBuilder().addNewMatchExpression().withKey("app")
        .withOperator("Within").withValues("x").endMatchExpression().build();
    Condition ready = condition(compute(gw, List.of(egressNode("e1", "198.18.0.11", true)), Map.of()), "Ready");
    assertThat(ready.getReason()).isEqualTo("InvalidSelector");
    assertThat(ready.getMessage()).contains("spec.sources.podSelector", "Within");
  }

  @Test
  void programmedWaitsForTheAgentsAppliedGenerationAndReportsItsError() {
    EgressGateway gw = gateway("pay", CREATED, "198.18.0.100");
    List<Node> nodes = List.of(egressNode("e1", "198.18.0.11", true));
    GatewayPlan plan = GatewayPlanner.plan(gw, cluster(nodes, List.of(), List.of(gw)), T0);
    EgressNodeState state = e1State(plan, 3L, 2L);

    assertThat(condition(compute(gw, nodes, Map.of("e1", state)), "Programmed").getReason()).isEqualTo("NotProgrammed");
    state.getStatus().appliedGeneration = 3L;
    EgressGatewayStatus done = compute(gw, nodes, Map.of("e1", state));
    assertThat(condition(done, "Programmed").getStatus()).isEqualTo("True");
    assertThat(done.nodes).singleElement().satisfies(n -> assertThat(n.programmed).isTrue());
    state.getStatus().error = "iptables-restore: line 3 failed";
    Condition failed = condition(compute(gw, nodes, Map.of("e1", state)), "Programmed");
    assertThat(failed.getReason()).isEqualTo("ApplyFailed");
    assertThat(failed.getMessage()).contains("e1", "line 3 failed");
  }

  @Test
  void recomputingAnUnchangedWorldGivesAnEqualStatusSoNothingIsWritten() {
    EgressGateway gw = gateway("pay", CREATED, "198.18.0.100");
    List<Node> nodes = List.of(egressNode("e1", "198.18.0.11", true));
    EgressGatewayStatus first = compute(gw, nodes, Map.of());
    gw.setStatus(first);
    EgressGatewayStatus later = StatusCalculator.compute(gw,
        GatewayPlanner.plan(gw, cluster(nodes, List.of(), List.of(gw)), T0.plusSeconds(60)), Map.of(), T0.plusSeconds(60));
    assertThat(later).isEqualTo(first);
    assertThat(condition(later, "Ready").getLastTransitionTime()).isEqualTo(T0.toString());
  }

  @Test
  void eventsTellWhereAnIPWentAndWhy() {
    EgressGateway gw = gateway("pay", CREATED, "198.18.0.100");
    List<Node> both = List.of(egressNode("e1", "198.18.0.11", true), egressNode("e2", "198.18.0.12", true));
    EgressGatewayStatus before = compute(gw, both, Map.of());
    gw.setStatus(before);
    List<Node> e1Down = List.of(egressNode("e1", "198.18.0.11", false), egressNode("e2", "198.18.0.12", true));
    GatewayPlan plan = GatewayPlanner.plan(gw, cluster(e1Down, List.of(), List.of(gw)), T0);
    var after = StatusCalculator.compute(gw, plan, Map.of(), T0);
    assertThat(StatusEvents.between(before, after, plan)).singleElement().satisfies(e -> {
      assertThat(e.reason()).isEqualTo("EgressIPMoved");
      assertThat(e.message()).contains("198.18.0.100", "from node e1 to node e2", "e1 is not ready");
    });
    assertThat(StatusEvents.between(after, after, plan)).isEmpty();
    // Its Node object deleted (it still matched the selector by its labels): said so.
    GatewayPlan deleted = GatewayPlanner.plan(gw, cluster(both.subList(1, 2), List.of(), List.of(gw)), T0);
    assertThat(StatusEvents.between(before, StatusCalculator.compute(gw, deleted, Map.of(), T0), deleted))
        .singleElement().satisfies(e -> assertThat(e.message()).endsWith("from node e1 to node e2: e1 was deleted"));
    GatewayPlan none = GatewayPlanner.plan(gw, cluster(List.of(), List.of(), List.of(gw)), T0);
    assertThat(StatusEvents.between(before, StatusCalculator.compute(gw, none, Map.of(), T0), none))
        .singleElement().satisfies(e -> assertThat(e.message()).contains("left node e1 (e1 was deleted)"));
  }

  @Test
  void snatPortPressureIsAConditionFromTheAgentsReportsWithOneWarningWhenRaisedAndOneEventWhenCleared() {
    EgressGateway gw = gateway("pay", CREATED, "198.18.0.100");
    List<Node> nodes = List.of(egressNode("e1", "198.18.0.11", true));
    GatewayPlan plan = GatewayPlanner.plan(gw, cluster(nodes, List.of(), List.of(gw)), T0);
    EgressNodeState state = e1State(plan, 1L, 1L);
    EgressGatewayStatus calm = compute(gw, nodes, Map.of("e1", state));
    assertThat(condition(calm, "SNATPortPressure")).extracting(Condition::getStatus, Condition::getReason)
        .containsExactly("False", "PortsAvailable");

    state.getStatus().snatPortUse = List.of(new io.natgate.api.v1alpha1.SnatPortUse("198.18.0.100",
        "tcp 203.0.113.10:443", 85));
    gw.setStatus(calm);
    EgressGatewayStatus pressed = compute(gw, nodes, Map.of("e1", state));
    Condition raised = condition(pressed, "SNATPortPressure");
    assertThat(raised.getStatus()).isEqualTo("True");
    assertThat(raised.getMessage()).contains("198.18.0.100 to tcp 203.0.113.10:443 (85 %) on e1");
    assertThat(StatusEvents.between(calm, pressed, plan)).singleElement().satisfies(e -> {
      assertThat(e.warning()).isTrue();
      assertThat(e.reason()).isEqualTo("SNATPortPressure");
      assertThat(e.message()).contains("tcp 203.0.113.10:443");
    });
    gw.setStatus(pressed);
    assertThat(compute(gw, nodes, Map.of("e1", state))).as("the same report: nothing to write").isEqualTo(pressed);
    state.getStatus().snatPortUse = List.of(new io.natgate.api.v1alpha1.SnatPortUse("198.18.0.100",
        "tcp 203.0.113.10:443", 90));
    EgressGatewayStatus higher = compute(gw, nodes, Map.of("e1", state));
    assertThat(StatusEvents.between(pressed, higher, plan)).as("still short: no second warning").isEmpty();

    state.getStatus().snatPortUse = null;
    gw.setStatus(higher);
    EgressGatewayStatus cleared = compute(gw, nodes, Map.of("e1", state));
    assertThat(condition(cleared, "SNATPortPressure").getStatus()).isEqualTo("False");
    assertThat(StatusEvents.between(higher, cleared, plan)).singleElement().satisfies(e -> {
      assertThat(e.warning()).isFalse();
      assertThat(e.reason()).isEqualTo("SNATPortPressureCleared");
    });
  }

  @Test
  void aRemovedEgressIPStaysListedAsDrainingUntilNoNodeStateSnatsToItOrHoldsIt() {
    EgressGateway gw = gateway("pay", CREATED, "198.18.0.100", "198.18.0.101");
    List<Node> nodes = List.of(egressNode("e1", "198.18.0.11", true), egressNode("e2", "198.18.0.12", true));
    gw.setStatus(compute(gw, nodes, Map.of()));
    assertThat(gw.getStatus().sourceIPs).containsExactly("198.18.0.100", "198.18.0.101");
    assertThat(gw.getStatus().drainingSourceIPs).isEmpty();
    gw.getSpec().egressIPs = new java.util.ArrayList<>(List.of("198.18.0.100"));
    // e2 holds .101 and SNATs a pod to it, applied: the pod still leaves with .101.
    EgressNodeState e2 = state("e2", 2L, 2L, List.of(new NodeGatewayState.Snat("198.18.0.101", true,
        List.of("198.19.1.5"))), List.of("198.18.0.101"));
    assertDraining(gw, nodes, e2, "198.18.0.101");

    // The spec without .101 is written; the agent has not applied it and last reported holding .101.
    e2 = state("e2", 3L, 2L, List.of(), List.of("198.18.0.101"));
    assertDraining(gw, nodes, e2, "198.18.0.101");
    // Not applied yet, held no longer reported (a status written for the new spec): what was listed stays listed.
    e2 = state("e2", 3L, 2L, List.of(), null);
    assertDraining(gw, nodes, e2, "198.18.0.101");
    // Failed: its agent may still run the spec with .101.
    e2.getStatus().error = "ip addr del: Cannot assign requested address";
    assertDraining(gw, nodes, e2, "198.18.0.101");

    e2 = state("e2", 3L, 3L, List.of(), null);
    EgressGatewayStatus drained = compute(gw, nodes, Map.of("e2", e2));
    assertThat(drained.sourceIPs).as("applied, released: no node SNATs with it").containsExactly("198.18.0.100");
    assertThat(drained.drainingSourceIPs).as("empty, not left out: a merge patch would keep the last list")
        .isEmpty();
    gw.setStatus(drained);
    e2 = state("e2", 4L, 3L, List.of(), null);
    assertThat(compute(gw, nodes, Map.of("e2", e2)).sourceIPs).as("once unlisted, a pending state does not bring it "
        + "back").containsExactly("198.18.0.100");
  }

  /** Listed in sourceIPs (in address order) and as draining, written as the last status. */
  private static void assertDraining(EgressGateway gw, List<Node> nodes, EgressNodeState e2, String ip) {
    EgressGatewayStatus status = compute(gw, nodes, Map.of("e2", e2));
    assertThat(status.sourceIPs).containsExactly("198.18.0.100", ip);
    assertThat(status.drainingSourceIPs).containsExactly(ip);
    gw.setStatus(status);
  }

  private static EgressNodeState state(String node, long generation, long applied, List<NodeGatewayState.Snat> snat,
      List<String> held) {
    EgressNodeState state = new EgressNodeState();
    state.setMetadata(new ObjectMetaBuilder().withName(EgressNodeState.nameFor("pay", node)).withGeneration(generation)
        .build());
    state.setSpec(new EgressNodeStateSpec(node, "pay", new NodeGatewayState()));
    state.getSpec().snat = snat;
    state.setStatus(new EgressNodeStateStatus());
    state.getStatus().appliedGeneration = applied;
    state.getStatus().held = held;
    return state;
  }

  /** Gateway pay's state for node e1 as planned, at {@code generation}, its agent having applied {@code applied}. */
  private static EgressNodeState e1State(GatewayPlan plan, long generation, long applied) {
    EgressNodeState state = new EgressNodeState();
    state.setMetadata(new ObjectMetaBuilder().withName(EgressNodeState.nameFor("pay", "e1")).withGeneration(generation)
        .build());
    state.setSpec(plan.nodeStates().get("e1"));
    state.setStatus(new EgressNodeStateStatus());
    state.getStatus().appliedGeneration = applied;
    return state;
  }

  private static EgressGatewayStatus compute(EgressGateway gw, List<Node> nodes, Map<String, EgressNodeState> states) {
    GatewayPlan plan = GatewayPlanner.plan(gw, cluster(nodes, List.of(), List.of(gw)), T0);
    return StatusCalculator.compute(gw, plan, new HashMap<>(states), T0);
  }

  @Test
  void aFailedReconcileTurnsReadyFalseWithItsReasonAndKeepsTheRest() {
    var last = new EgressGatewayStatus();
    last.sourceIPs = List.of("198.18.0.100");
    last.conditions = List.of(
        new io.fabric8.kubernetes.api.model.ConditionBuilder().withType("Ready").withStatus("True").withReason("Ready")
            .withLastTransitionTime("2026-01-01T00:00:00Z").build(),
        new io.fabric8.kubernetes.api.model.ConditionBuilder().withType("Programmed").withStatus("True")
            .withReason("Programmed").build());
    Instant now = Instant.parse("2026-01-02T00:00:00Z");
    EgressGatewayStatus failed = StatusCalculator.failed(last, 3, "Forbidden", "nodes is forbidden", now);
    assertThat(failed.sourceIPs).containsExactly("198.18.0.100");
    assertThat(condition(failed, "Ready").getStatus()).isEqualTo("False");
    assertThat(condition(failed, "Ready").getReason()).isEqualTo("Forbidden");
    assertThat(condition(failed, "Ready").getLastTransitionTime()).isEqualTo(now.toString());
    assertThat(condition(failed, "Ready").getObservedGeneration()).isEqualTo(3L);
    assertThat(condition(failed, "Programmed").getReason()).isEqualTo("Programmed");
    assertThat(StatusCalculator.failed(null, 1, "Invalid", "x", now).conditions).hasSize(1);
  }

  private static Condition condition(EgressGatewayStatus status, String type) {
    return status.conditions.stream().filter(c -> type.equals(c.getType())).findFirst().orElseThrow();
  }
}
