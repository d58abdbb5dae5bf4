package io.natgate.plan;

import io.fabric8.kubernetes.api.model.Node;

/** The one place that decides whether a node may hold egress IPs. */
public final class NodeReadiness {
  private NodeReadiness() {
  }

  public static boolean isReady(Node node) {
    if (node.getMetadata().getDeletionTimestamp() != null || node.getStatus() == null
        || node.getStatus().getConditions() == null) {
      return false;
    }
    return node.getStatus().getConditions().stream()
        .anyMatch(c -> "Ready".equals(c.getType()) && "True".equals(c.getStatus()));
  }

  public static String internalIP(Node node) {
    if (node.getStatus() == null || node.getStatus().getAddresses() == null) {
      return null;
    }
    return node.getStatus().getAddresses().stream().filter(a -> "InternalIP".equals(a.getType()))
        .map(a -> a.getAddress()).filter(a -> a.indexOf(':') < 0).findFirst().orElse(null);
  }
}
