package io.natgate.reconcile;

import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.ManagedFieldsEntry;
import io.fabric8.kubernetes.api.model.Node;
import io.fabric8.kubernetes.api.model.NodeBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.natgate.plan.NodeLabels;
import io.natgate.testing.ControlPlane;
import io.natgate.testing.ControlPlaneExtension;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * NodeLabeler on the real API server, given the Node as the operator's informer last saw it: a Node deleted since
 * (or replaced under its name) is never created (a server-side apply creates a missing object) nor labelled, and
 * the labeler says so instead of failing the reconcile. Both as config/rbac lets the operator write (no create on
 * Nodes: the API server refuses the apply's create with 403) and with a client that may create Nodes.
 */
@ExtendWith(ControlPlaneExtension.class)
class NodeLabelerIT {
  private final ControlPlane controlPlane;

  NodeLabelerIT(ControlPlane controlPlane) {
    this.controlPlane = controlPlane;
  }

  @Test
  void aDeletedNodeIsNeitherCreatedNorLabelled() {
    KubernetesClient admin = controlPlane.admin();
    try (KubernetesClient operator = controlPlane.operatorClient()) {
      for (var client : Map.of("operator", operator, "admin", admin).entrySet()) {
        String name = "labeler-deleted-" + client.getKey();
        Node seen = create(name, Map.of());
        Node seenLabelled = create(name + "-labelled", Map.of(NodeLabels.GATEWAY, "payments"));
        deleteAndWait(name);
        deleteAndWait(name + "-labelled");
        var labeler = new NodeLabeler(client.getValue());

        assertThat(labeler.ensure(seen, "payments")).as("label added, as " + client.getKey()).isFalse();
        assertThat(labeler.ensure(seenLabelled, null)).as("label removed, as " + client.getKey()).isFalse();
        assertThat(admin.nodes().withName(name).get()).as(name).isNull();
        assertThat(admin.nodes().withName(name + "-labelled").get()).as(name + "-labelled").isNull();
      }
    }
  }

  @Test
  void aNodeReplacedUnderTheSameNameIsLabelledOnlyFromItsOwnObject() {
    KubernetesClient admin = controlPlane.admin();
    String name = "labeler-replaced";
    Node old = create(name, Map.of());
    deleteAndWait(name);
    create(name, Map.of("team", "payments"));
    try (KubernetesClient operator = controlPlane.operatorClient()) {
      var labeler = new NodeLabeler(operator);
      assertThat(labeler.ensure(old, "payments")).isFalse();
      Node current = admin.nodes().withName(name).get();
      assertThat(current.getMetadata().getLabels()).isEqualTo(Map.of("team", "payments"));

      // The current object: added and removed, owned by natgate's field manager alone (server-side apply).
      assertThat(labeler.ensure(current, "payments")).isTrue();
      Node labelled = admin.nodes().withName(name).get();
      assertThat(labelled.getMetadata().getLabels()).containsEntry(NodeLabels.GATEWAY, "payments");
      List<ManagedFieldsEntry> ours = labelled.getMetadata().getManagedFields().stream()
          .filter(f -> f.getManager().equals(EgressGatewayReconciler.FIELD_MANAGER)).toList();
      assertThat(ours).singleElement().satisfies(f -> {
        assertThat(f.getOperation()).isEqualTo("Apply");
        assertThat(f.getFieldsV1().getAdditionalProperties()).isEqualTo(
            Map.of("f:metadata", Map.of("f:labels", Map.of("f:" + NodeLabels.GATEWAY, Map.of()))));
      });
      assertThat(labeler.ensure(labelled, null)).isTrue();
      assertThat(admin.nodes().withName(name).get().getMetadata().getLabels()).isEqualTo(Map.of("team", "payments"));
    } finally {
      admin.nodes().withName(name).delete();
    }
  }

  private Node create(String name, Map<String, String> labels) {
    return controlPlane.admin().nodes().resource(new NodeBuilder().withNewMetadata().withName(name).withLabels(labels)
        .endMetadata().withNewSpec().endSpec().build()).create();
  }

  private void deleteAndWait(String name) {
    controlPlane.admin().nodes().withName(name).withGracePeriod(0).delete();
    controlPlane.admin().nodes().withName(name).waitUntilCondition(n -> n == null, 30, java.util.concurrent.TimeUnit.SECONDS);
  }
}
