package io.natgate.reconcile;

import io.fabric8.kubernetes.api.model.ObjectMetaBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.fabric8.kubernetes.client.dsl.base.PatchContext;
import io.fabric8.kubernetes.client.dsl.base.PatchType;
import io.fabric8.kubernetes.client.utils.Serialization;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import io.natgate.api.v1alpha1.NodeGatewayState;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Objects;

/**
 * Writes one gateway's entry of one node's EgressNodeState. Each gateway applies its own map key under a field
 * manager of its own, so gateways never overwrite each other; a state left with no entry is deleted.
 */
final class NodeStateWriter {
  private final KubernetesClient client;

  NodeStateWriter(KubernetesClient client) {
    this.client = client;
  }

  /**
   * @param desired the entry to hold, or null to remove this gateway's entry
   * @param current the node's state as observed, or null
   * @return the state as this write left it, or null when no write was needed (or the state is gone)
   */
  EgressNodeState ensure(String node, String gateway, NodeGatewayState desired, EgressNodeState current) {
    NodeGatewayState observed = current == null || current.getSpec() == null ? null : current.getSpec().gateways.get(gateway);
    if (Objects.equals(observed, desired)) {
      return null;
    }
    if (desired == null && current == null) {
      return null;
    }
    EgressNodeState result;
    if (desired == null) {
      // A JSON merge patch removes just this key (applying an empty map would null the whole field).
      String patch = "{\"spec\":{\"gateways\":{" + Serialization.asJson(gateway) + ":null}}}";
      var context = new PatchContext.Builder().withPatchType(PatchType.JSON_MERGE)
          .withFieldManager(fieldManager(gateway)).build();
      try {
        result = client.resources(EgressNodeState.class).withName(node).patch(context, patch);
      } catch (KubernetesClientException e) {
        if (e.getCode() == 404) {
          return null; // deleted meanwhile: nothing left to remove
        }
        throw e;
      }
    } else {
      EgressNodeState applied = new EgressNodeState();
      applied.setMetadata(new ObjectMetaBuilder().withName(node).build());
      applied.setSpec(new EgressNodeStateSpec());
      applied.getSpec().gateways.put(gateway, desired);
      result = client.resources(EgressNodeState.class).resource(applied)
          .fieldManager(fieldManager(gateway)).forceConflicts().serverSideApply();
    }
    if (result.getSpec() == null || result.getSpec().gateways == null || result.getSpec().gateways.isEmpty()) {
      deleteIfStillEmpty(result);
      return null;
    }
    return result;
  }

  /** Deletes an entry-less state unless someone wrote to it meanwhile (resourceVersion precondition). */
  private void deleteIfStillEmpty(EgressNodeState state) {
    try {
      client.resources(EgressNodeState.class).withName(state.getMetadata().getName())
          .lockResourceVersion(state.getMetadata().getResourceVersion()).delete();
    } catch (KubernetesClientException e) {
      if (e.getCode() != 409 && e.getCode() != 404) {
        throw e;
      }
      // 409: another gateway added an entry meanwhile, so the state is needed; 404: already gone.
    }
  }

  /** Field managers are limited to 128 characters; gateway names to 253. */
  static String fieldManager(String gateway) {
    String prefix = "natgate-gateway-";
    if (prefix.length() + gateway.length() <= 128) {
      return prefix + gateway;
    }
    try {
      byte[] digest = MessageDigest.getInstance("SHA-256").digest(gateway.getBytes(StandardCharsets.UTF_8));
      return prefix + gateway.substring(0, 90) + "-" + HexFormat.of().formatHex(digest, 0, 8);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
