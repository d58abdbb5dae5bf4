package io.natgate.reconcile;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.fabric8.kubernetes.api.model.Node;
import io.fabric8.kubernetes.api.model.NodeBuilder;
import io.fabric8.kubernetes.api.model.ObjectMetaBuilder;
import io.fabric8.kubernetes.api.model.coordination.v1.Lease;
import io.fabric8.kubernetes.api.model.coordination.v1.LeaseBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.fabric8.kubernetes.client.dsl.base.PatchContext;
import io.fabric8.kubernetes.client.dsl.base.PatchType;
import io.natgate.agent.Heartbeat;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.config.OperatorBeans;
import io.natgate.plan.NodeLabels;
import io.natgate.plan.NodeReadiness;
import io.natgate.testing.ControlPlane;
import io.natgate.testing.ControlPlaneExtension;
import java.util.Map;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * config/rbac/admission_policies.yaml on the real API server: RBAC lets every agent write every node's objects, the
 * policies let each agent write only its own node's (named by its pod-bound token), and the operator change only
 * the gateway label of a Node and only its leader Lease. Each refusal says who may write what.
 */
@ExtendWith(ControlPlaneExtension.class)
class AdmissionPoliciesIT {
  static final String NS = ControlPlane.OPERATOR_NAMESPACE;
  static final String A = "policy-node-a";
  static final String B = "policy-node-b";

  private final ControlPlane controlPlane;

  AdmissionPoliciesIT(ControlPlane controlPlane) {
    this.controlPlane = controlPlane;
  }

  @Test
  void anAgentWritesOnlyItsOwnNodesStatesAndLease() {
    KubernetesClient admin = controlPlane.admin();
    EgressNodeState stateA = admin.resource(state(A)).serverSideApply();
    EgressNodeState stateB = admin.resource(state(B)).serverSideApply();
    try (KubernetesClient agentA = controlPlane.agentClient(A);
        KubernetesClient unbound = controlPlane.clientFor(NS, ControlPlane.AGENT_SERVICE_ACCOUNT)) {

      reportApplied(agentA, stateA);
      assertThat(admin.resource(stateA).get().getStatus().appliedGeneration).isEqualTo(1L);
      assertRefused(() -> reportApplied(agentA, stateB), "natgate-agent of node " + A
          + " may write only its own node's EgressNodeStates, not " + stateB.getMetadata().getName() + " of node " + B);
      assertThat(admin.resource(stateB).get().getStatus()).as("B's status written by A's agent").isNull();

      agentA.resource(lease(Heartbeat.leaseName(A), A)).create();
      assertRefused(() -> agentA.resource(lease(Heartbeat.leaseName(B), B)).create(),
          "natgate-agent of node " + A + " may write only the Lease natgate-agent-" + A);
      assertRefused(() -> agentA.resource(lease(Heartbeat.leaseName(A), B)).update(),
          "labeled natgate.io/node=" + A);
      assertRefused(() -> agentA.resource(lease(OperatorBeans.LEASE_NAME, A)).create(), "not "
          + OperatorBeans.LEASE_NAME);

      // A token bound to no pod (not what the kubelet mounts) names no node: no write at all.
      assertRefused(() -> reportApplied(unbound, stateA), "natgate-agent's token is bound to no node");
    } finally {
      admin.resources(EgressNodeState.class).resource(stateA).delete();
      admin.resources(EgressNodeState.class).resource(stateB).delete();
      admin.leases().inNamespace(NS).withName(Heartbeat.leaseName(A)).delete();
    }
  }

  @Test
  void theOperatorChangesOnlyTheGatewayLabelOfANodeAndOnlyItsLeaderLease() {
    KubernetesClient admin = controlPlane.admin();
    String name = "policy-node-labels";
    Node node = admin.nodes().resource(new NodeBuilder().withNewMetadata().withName(name)
        .withLabels(Map.of("team", "payments")).endMetadata().withNewSpec().endSpec().build()).create();
    try (KubernetesClient operator = controlPlane.operatorClient()) {
      var labeler = new NodeLabeler(operator);
      assertThat(labeler.ensure(node, "payments")).isTrue();
      Node labeled = admin.nodes().withName(name).get();
      assertThat(labeled.getMetadata().getLabels()).containsEntry(NodeLabels.GATEWAY, "payments")
          .containsEntry("team", "payments");
      assertThat(labeler.ensure(labeled, null)).isTrue();
      assertThat(admin.nodes().withName(name).get().getMetadata().getLabels()).doesNotContainKey(NodeLabels.GATEWAY);

      String onlyTheLabel = "natgate-operator may change only the natgate.io/gateway label of a Node (node " + name;
      assertRefused(() -> operator.nodes().withName(name).edit(n -> new NodeBuilder(n).editMetadata()
          .addToLabels("team", "other").endMetadata().build()), onlyTheLabel);
      assertRefused(() -> operator.nodes().withName(name).edit(n -> new NodeBuilder(n).editSpec().addNewTaint()
          .withKey("natgate.io/gateway").withEffect("NoSchedule").endTaint().endSpec().build()), onlyTheLabel);
      assertRefused(() -> operator.nodes().withName(name).edit(n -> new NodeBuilder(n).editMetadata()
          .addToAnnotations("x", "y").endMetadata().build()), onlyTheLabel);
      assertThat(admin.nodes().withName(name).get().getMetadata().getLabels()).containsEntry("team", "payments");

      assertRefused(() -> operator.resource(lease(Heartbeat.leaseName(name), name)).create(),
          "natgate-operator may write only its leader Lease, not " + Heartbeat.leaseName(name));
    } finally {
      admin.nodes().withName(name).delete();
    }
  }

  private static void reportApplied(KubernetesClient client, EgressNodeState state) {
    client.resources(EgressNodeState.class).withName(state.getMetadata().getName()).subresource("status")
        .patch(PatchContext.of(PatchType.JSON_MERGE), "{\"status\":{\"appliedGeneration\":1}}");
  }

  private static void assertRefused(ThrowingCallable write, String message) {
    assertThatThrownBy(write).isInstanceOf(KubernetesClientException.class)
        .satisfies(e -> assertThat(((KubernetesClientException) e).getCode()).isEqualTo(403))
        .hasMessageContaining(message);
  }

  private static EgressNodeState state(String node) {
    var state = new EgressNodeState();
    state.setMetadata(new ObjectMetaBuilder().withName(EgressNodeState.nameFor("policy", node)).build());
    state.setSpec(new EgressNodeStateSpec(node, "policy", new NodeGatewayState()));
    return state;
  }

  private static Lease lease(String name, String node) {
    return new LeaseBuilder().withNewMetadata().withName(name).withNamespace(NS)
        .addToLabels(NodeReadiness.NODE_LABEL, node).endMetadata().withNewSpec().withHolderIdentity(node)
        .endSpec().build();
  }
}
