package io.natgate.reconcile;

import io.natgate.Defaults;
import java.time.Duration;
import java.util.List;

/**
 * Operator settings the reconciler needs, as a plain value (built from {@code natgate.*} configuration in the
 * application, directly in tests).
 *
 * @param clusterCidrs   pod and service networks never steered to a gateway
 * @param eventNamespace namespace for the Events about cluster-scoped gateways
 * @param heartbeatNamespace namespace of the agents' Leases
 * @param heartbeatTimeout   a node whose agent has not renewed its Lease for this long may not hold egress IPs
 * @param peerGroups         publish peer groups, so that agents decide holding by quorum (off: Leases only)
 */
public record OperatorSettings(List<String> clusterCidrs, String eventNamespace, String heartbeatNamespace,
    Duration heartbeatTimeout, boolean peerGroups) {
  public static OperatorSettings defaults() {
    return new OperatorSettings(List.of(), Defaults.EVENT_NAMESPACE, Defaults.HEARTBEAT_NAMESPACE,
        Defaults.heartbeatTimeout(), true);
  }

  /** The same without peer groups: for agents that cannot reach each other (in-JVM test agents). */
  public OperatorSettings withoutPeerGroups() {
    return new OperatorSettings(clusterCidrs, eventNamespace, heartbeatNamespace, heartbeatTimeout, false);
  }
}
