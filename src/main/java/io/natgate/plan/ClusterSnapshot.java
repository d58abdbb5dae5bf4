package io.natgate.plan;

import io.fabric8.kubernetes.api.model.Node;
import io.fabric8.kubernetes.api.model.Pod;
import io.natgate.api.v1alpha1.EgressGateway;
import java.util.Collection;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * What the operator observed, as plain values: the only input of the planning functions.
 *
 * @param nodes           every Node, by name
 * @param pods            the Pods to select from: at least all of those in the namespaces the planned gateway's
 *                        namespaceSelector selects (the reconciler passes just those)
 * @param namespaceLabels every Namespace's labels, by name
 * @param gateways        every EgressGateway (including the one being planned)
 * @param clusterCidrs    CIDRs always excluded from steering (configured pod and service networks)
 * @param liveAgents      nodes whose agent renewed its Lease within the heartbeat timeout
 * @param peerGroups      whether gateways get peer groups (agents that decide by quorum); off, Leases only
 */
public record ClusterSnapshot(Map<String, Node> nodes, Collection<Pod> pods,
    Map<String, Map<String, String>> namespaceLabels, Collection<EgressGateway> gateways, List<String> clusterCidrs,
    Set<String> liveAgents, boolean peerGroups) {

  public ClusterSnapshot(Map<String, Node> nodes, Collection<Pod> pods, Map<String, Map<String, String>> namespaceLabels,
      Collection<EgressGateway> gateways, List<String> clusterCidrs, Set<String> liveAgents) {
    this(nodes, pods, namespaceLabels, gateways, clusterCidrs, liveAgents, true);
  }

  /** Older first: creation time, then name. The older of two gateways wins a contested IP or node label. */
  public static final Comparator<EgressGateway> SENIORITY = Comparator
      .comparing((EgressGateway g) -> Objects.requireNonNullElse(g.getMetadata().getCreationTimestamp(), ""))
      .thenComparing(g -> g.getMetadata().getName());

  /** Gateways that are not being deleted. */
  public List<EgressGateway> liveGateways() {
    return gateways.stream().filter(g -> g.getMetadata().getDeletionTimestamp() == null && g.getSpec() != null).toList();
  }
}
