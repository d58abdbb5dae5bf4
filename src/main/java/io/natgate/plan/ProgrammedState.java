package io.natgate.plan;

import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import java.util.Objects;

/** Whether a node's agent has applied what a gateway wants there. */
public enum ProgrammedState {
  PROGRAMMED, PENDING, FAILED;

  /**
   * @param desired what the gateway wants on the node, or null when it wants nothing there
   * @param state   the gateway's EgressNodeState for the node as observed, or null
   */
  public static ProgrammedState of(EgressNodeStateSpec desired, EgressNodeState state) {
    if (state == null) {
      return desired == null ? PROGRAMMED : PENDING;
    }
    if (!Objects.equals(desired, state.getSpec())) {
      return PENDING;
    }
    var status = state.getStatus();
    if (status != null && status.error != null && !status.error.isEmpty()) {
      return FAILED;
    }
    Long generation = state.getMetadata().getGeneration();
    boolean applied = status != null && status.appliedGeneration != null && generation != null
        && status.appliedGeneration >= generation;
    return applied ? PROGRAMMED : PENDING;
  }
}
