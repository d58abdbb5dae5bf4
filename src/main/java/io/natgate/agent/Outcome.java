package io.natgate.agent;

import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateStatus;
import io.natgate.peers.HoldDecision;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * What the agent's last apply did, and so what each of its node's states should say in its status (pure).
 *
 * @param applied the generation applied, by state name (after a success)
 * @param error   why the apply failed, or null
 * @param held    the egress IPs held here (by the peers' decision, or as last applied after a failure)
 */
record Outcome(Map<String, Long> applied, String error, Set<String> held) {
  /** The API server's limit is far above this; a status is for people to read. */
  static final int MAX_ERROR_LENGTH = 1000;

  static Outcome applied(List<EgressNodeState> states, Set<String> held) {
    return new Outcome(states.stream().collect(Collectors.toUnmodifiableMap(s -> s.getMetadata().getName(),
        s -> s.getMetadata().getGeneration())), null, Set.copyOf(held));
  }

  static Outcome failed(String error, Set<String> held) {
    return new Outcome(Map.of(), error == null ? "failed" : error, Set.copyOf(held));
  }

  /**
   * The status {@code state} should carry: the generation applied, or the error (keeping the generation applied
   * before); null when the last apply did not see the state (its own apply is still to come).
   */
  EgressNodeStateStatus statusFor(EgressNodeState state) {
    return statusFor(state, new NameCounts());
  }

  /** The same, with what the state's names resolve to here ({@code names}: the latest count). */
  EgressNodeStateStatus statusFor(EgressNodeState state, NameCounts names) {
    var status = new EgressNodeStateStatus();
    status.resolvedNames = state.getSpec() == null ? null : names.of(state.getSpec().gateway, state.getSpec());
    List<String> heldHere = state.getSpec() == null ? List.of()
        : HoldDecision.egressIPs(state.getSpec()).stream().filter(held::contains).sorted().toList();
    status.held = heldHere.isEmpty() ? null : heldHere;
    if (error != null) {
      status.appliedGeneration = state.getStatus() == null ? null : state.getStatus().appliedGeneration;
      status.error = error.length() > MAX_ERROR_LENGTH ? error.substring(0, MAX_ERROR_LENGTH) : error;
      return status;
    }
    Long generation = applied.get(state.getMetadata().getName());
    if (generation == null) {
      return null;
    }
    status.appliedGeneration = generation;
    return status;
  }
}
