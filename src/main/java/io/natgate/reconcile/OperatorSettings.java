package io.natgate.reconcile;

import java.util.List;

/**
 * Operator settings the reconciler needs, as a plain value (built from {@code natgate.*} configuration in the
 * application, directly in tests).
 *
 * @param clusterCidrs   pod and service networks never steered to a gateway
 * @param eventNamespace namespace for the Events about cluster-scoped gateways
 */
public record OperatorSettings(List<String> clusterCidrs, String eventNamespace) {
  public static OperatorSettings defaults() {
    return new OperatorSettings(List.of(), "default");
  }
}
