package io.natgate.plan;

import io.fabric8.kubernetes.api.model.Node;
import io.fabric8.kubernetes.api.model.coordination.v1.Lease;
import java.time.Duration;
import java.time.Instant;
import java.util.Set;

/**
 * The one place that decides whether a node may hold egress IPs: its kubelet reports Ready, it is not being
 * deleted, and its natgate agent renewed its Lease within the heartbeat timeout (far quicker to notice than
 * the Node condition, which takes about 40 s).
 */
public final class NodeReadiness {
  /** Each agent's Lease is {@code natgate-agent-<node>}, labelled with its node's name. */
  public static final String LEASE_PREFIX = "natgate-agent-";
  public static final String NODE_LABEL = "natgate.io/node";

  private NodeReadiness() {
  }

  public static boolean isReady(Node node, Set<String> liveAgents) {
    return whyNotReady(node, liveAgents) == null;
  }

  /** Why a node may not hold egress IPs, for conditions and Events; null when it may. */
  public static String whyNotReady(Node node, Set<String> liveAgents) {
    if (node.getMetadata().getDeletionTimestamp() != null) {
      return "it is being deleted";
    }
    if (!kubeletReady(node)) {
      return "its kubelet does not report Ready";
    }
    if (internalIP(node) == null) {
      return "it has no IPv4 InternalIP";
    }
    if (!liveAgents.contains(node.getMetadata().getName())) {
      return "its natgate agent's Lease is not being renewed";
    }
    return null;
  }

  /** Whether a node agent's Lease was renewed less than {@code timeout} before {@code now}. */
  public static boolean agentAlive(Lease lease, Instant now, Duration timeout) {
    var renewed = lease.getSpec() == null ? null : lease.getSpec().getRenewTime();
    return renewed != null && renewed.toInstant().plus(timeout).isAfter(now);
  }

  public static boolean kubeletReady(Node node) {
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
