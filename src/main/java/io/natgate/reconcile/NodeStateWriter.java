package io.natgate.reconcile;

import io.fabric8.kubernetes.api.model.ObjectMetaBuilder;
import io.fabric8.kubernetes.api.model.OwnerReferenceBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.fabric8.kubernetes.client.utils.Serialization;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Executor;
import org.jboss.logging.Logger;

/** Writes a gateway's EgressNodeStates: one per node it wants something on, only when it differs. */
final class NodeStateWriter {
  private static final Logger LOG = Logger.getLogger(NodeStateWriter.class);
  private final KubernetesClient client;

  NodeStateWriter(KubernetesClient client) {
    this.client = client;
  }

  /** The nodes whose state is not as wanted: to write, or (wanted nowhere) to delete. */
  static Set<String> differing(Map<String, EgressNodeStateSpec> desired, Map<String, EgressNodeState> current) {
    Set<String> nodes = new TreeSet<>(desired.keySet());
    nodes.addAll(current.keySet());
    nodes.removeIf(n -> Objects.equals(current.get(n) == null ? null : current.get(n).getSpec(), desired.get(n)));
    return nodes;
  }

  /**
   * Brings every node state of the gateway to what is wanted, all at once: each is an object of its own, read by its
   * node's agent alone, so no order between them matters, and a one-pod change waits for one round trip rather than
   * one per node (the holder's SNAT and the standbys' are written together). Rethrows the first write that failed
   * (the reconcile is retried).
   *
   * @return how many it wrote or deleted
   */
  int ensureAll(EgressGateway gateway, Map<String, EgressNodeStateSpec> desired, Map<String, EgressNodeState> current,
      Executor executor) {
    Set<String> nodes = differing(desired, current);
    if (nodes.size() == 1) {
      String node = nodes.iterator().next();
      write(gateway, desired.get(node), current.get(node));
      return 1;
    }
    List<CompletableFuture<Void>> writes = new ArrayList<>();
    nodes.forEach(n -> writes.add(CompletableFuture.runAsync(() -> write(gateway, desired.get(n), current.get(n)),
        executor)));
    try {
      CompletableFuture.allOf(writes.toArray(CompletableFuture[]::new)).join();
    } catch (CompletionException e) {
      if (e.getCause() instanceof RuntimeException r) {
        throw r; // as a write made here would have thrown it (a 403 or 422 becomes the gateway's condition)
      }
      throw e;
    }
    return nodes.size();
  }

  /**
   * One node's state, which {@link #differing} found not as wanted.
   *
   * @param desired the state to hold, or null to delete it
   * @param current the state as observed, or null
   */
  private void write(EgressGateway gateway, EgressNodeStateSpec desired, EgressNodeState current) {
    if (desired == null) {
      delete(current);
      return;
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
