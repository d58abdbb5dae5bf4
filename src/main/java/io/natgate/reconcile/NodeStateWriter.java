package io.natgate.reconcile;

import io.fabric8.kubernetes.api.model.ObjectMetaBuilder;
import io.fabric8.kubernetes.api.model.OwnerReferenceBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.fabric8.kubernetes.client.utils.Serialization;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import java.util.Objects;
import org.jboss.logging.Logger;

/** Writes a gateway's EgressNodeStates: one per node it wants something on, only when it differs. */
final class NodeStateWriter {
  private static final Logger LOG = Logger.getLogger(NodeStateWriter.class);
  private final KubernetesClient client;

  NodeStateWriter(KubernetesClient client) {
    this.client = client;
  }

  /**
   * @param desired the state to hold, or null to delete it
   * @param current the state as observed, or null
   * @return whether it wrote
   */
  boolean ensure(EgressGateway gateway, EgressNodeStateSpec desired, EgressNodeState current) {
    if (Objects.equals(current == null ? null : current.getSpec(), desired)) {
      return false;
    }
    if (desired == null) {
      delete(current);
      return true;
    }
    if (LOG.isDebugEnabled()) {
      LOG.debugf("writing node state %s/%s: was %s, now %s", desired.gateway, desired.nodeName,
          current == null ? "absent" : Serialization.asJson(current.getSpec()), Serialization.asJson(desired));
    }
    EgressNodeState applied = new EgressNodeState();
    // Owned by the gateway, so that the garbage collector removes what a stopped operator could not.
    applied.setMetadata(new ObjectMetaBuilder().withName(EgressNodeState.nameFor(desired.gateway, desired.nodeName))
        .withOwnerReferences(new OwnerReferenceBuilder().withApiVersion(gateway.getApiVersion())
            .withKind(gateway.getKind()).withName(gateway.getMetadata().getName())
            .withUid(gateway.getMetadata().getUid()).build())
        .build());
    applied.setSpec(desired);
    client.resources(EgressNodeState.class).resource(applied).fieldManager(EgressGatewayReconciler.FIELD_MANAGER)
        .forceConflicts().serverSideApply();
    return true;
  }

  void delete(EgressNodeState state) {
    try {
      client.resources(EgressNodeState.class).withName(state.getMetadata().getName()).delete();
    } catch (KubernetesClientException e) {
      if (e.getCode() != 404) {
        throw e;
      }
    }
  }
}
