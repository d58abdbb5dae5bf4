package io.natgate.reconcile;

import io.fabric8.kubernetes.api.model.Node;
import io.fabric8.kubernetes.api.model.NodeBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.natgate.plan.NodeLabels;
import java.util.Objects;

/** Writes only the natgate.io/gateway label, by server-side apply under natgate's own field manager. */
final class NodeLabeler {

  private final KubernetesClient client;

  NodeLabeler(KubernetesClient client) {
    this.client = client;
  }

  /** Sets the label to {@code gateway}, or removes ours when null; no call when the node already agrees. */
  boolean ensure(Node node, String gateway) {
    if (Objects.equals(NodeLabels.currentGateway(node), gateway)) {
      return false;
    }
    var builder = new NodeBuilder().withNewMetadata().withName(node.getMetadata().getName()).endMetadata();
    if (gateway != null) {
      builder.editMetadata().addToLabels(NodeLabels.GATEWAY, gateway).endMetadata();
    }
    client.nodes().resource(builder.build()).fieldManager(EgressGatewayReconciler.FIELD_MANAGER).forceConflicts()
        .serverSideApply();
    return true;
  }
}
