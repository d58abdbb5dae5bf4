package io.natgate.reconcile;

import io.fabric8.kubernetes.api.model.Node;
import io.fabric8.kubernetes.api.model.NodeBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.natgate.plan.NodeLabels;
import java.util.Objects;
import org.jboss.logging.Logger;

/**
 * Writes only the natgate.io/gateway label, by server-side apply under natgate's own field manager, and only to the
 * Node it was given: the apply names that Node's UID, so that it never creates a Node (an apply creates a missing
 * object) when the Node was deleted since the informer saw it, nor labels another Node since created with its name.
 */
final class NodeLabeler {
  private static final Logger LOG = Logger.getLogger(NodeLabeler.class);

  private final KubernetesClient client;

  NodeLabeler(KubernetesClient client) {
    this.client = client;
  }

  /**
   * Sets the label to {@code gateway}, or removes ours when null; no call when the node already agrees. False also
   * when the Node is gone (nothing to label: its deletion or replacement is an event of its own).
   */
  boolean ensure(Node node, String gateway) {
    if (Objects.equals(NodeLabels.currentGateway(node), gateway)) {
      return false;
    }
    String name = node.getMetadata().getName();
    var builder = new NodeBuilder().withNewMetadata().withName(name).withUid(node.getMetadata().getUid())
        .endMetadata();
    if (gateway != null) {
      builder.editMetadata().addToLabels(NodeLabels.GATEWAY, gateway).endMetadata();
    }
    try {
      client.nodes().resource(builder.build()).fieldManager(EgressGatewayReconciler.FIELD_MANAGER).forceConflicts()
          .serverSideApply();
      return true;
    } catch (KubernetesClientException e) {
      if (!goneOrReplaced(e)) {
        throw e;
      }
      LOG.infof("node %s deleted or replaced before its %s label was written: not labelled (%s)", name,
          NodeLabels.GATEWAY, e.getStatus() == null ? e.getMessage() : e.getStatus().getMessage());
      return false;
    }
  }

  /**
   * How the API server refuses an apply naming a UID no Node of that name has: 409 "uid mismatch" when there is none,
   * 422 "metadata.uid: field is immutable" when another has the name now (404 for any other way of saying it is gone).
   */
  private static boolean goneOrReplaced(KubernetesClientException e) {
    return e.getCode() == 409 || e.getCode() == 404 || e.getCode() == 422 && e.getStatus() != null
        && e.getStatus().getDetails() != null && e.getStatus().getDetails().getCauses().stream()
            .anyMatch(c -> "metadata.uid".equals(c.getField()));
  }
}
