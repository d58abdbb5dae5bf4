package io.natgate.plan;

import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.NodeGatewayState;

/** Whether a node's agent has applied what this gateway wants there. */
public enum ProgrammedState {
  PROGRAMMED, PENDING, FAILED;

  /**
   * @param desired this gateway's entry for the node, or null when it wants nothing there
   * @param state   the node's EgressNodeState as observed, or null
   */
  public static ProgrammedState of(String gateway, NodeGatewayState desired, EgressNodeState state) {
    return of(gateway, desired, state, null);
  }

  /**
   * @param entrySince the generation of {@code state} at which this gateway's entry got its current value, when known
   *                   (the agent applies the whole state: a report of that generation or later covers the entry, however
   *                   often other gateways changed theirs since); null: only a report of the current generation does
   */
  public static ProgrammedState of(String gateway, NodeGatewayState desired, EgressNodeState state, Long entrySince) {
    if (state == null) {
      return desired == null ? PROGRAMMED : PENDING;
    }
    NodeGatewayState observed = state.getSpec() == null ? null : state.getSpec().gateways.get(gateway);
    if (!java.util.Objects.equals(desired, observed)) {
      return PENDING;
    }
    var status = state.getStatus();
    if (status != null && status.error != null && !status.error.isEmpty()) {
      return FAILED;
    }
    Long generation = state.getMetadata().getGeneration();
    if (generation != null && entrySince != null) {
      generation = Math.min(generation, entrySince);
    }
    boolean applied = status != null && status.appliedGeneration != null && generation != null
        && status.appliedGeneration >= generation;
    return applied ? PROGRAMMED : PENDING;
  }
}
