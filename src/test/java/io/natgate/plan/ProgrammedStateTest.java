package io.natgate.plan;

import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.ObjectMetaBuilder;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import io.natgate.api.v1alpha1.EgressNodeStateStatus;
import io.natgate.api.v1alpha1.NodeGatewayState;
import org.junit.jupiter.api.Test;

class ProgrammedStateTest {
  @Test
  void anotherGatewaysLaterWriteLeavesAnAppliedEntryProgrammed() {
    NodeGatewayState entry = new NodeGatewayState();
    EgressNodeState state = new EgressNodeState();
    state.setMetadata(new ObjectMetaBuilder().withName("n1").withGeneration(7L).build());
    state.setSpec(new EgressNodeStateSpec());
    state.getSpec().gateways.put("a", entry);
    state.setStatus(new EgressNodeStateStatus());
    state.getStatus().appliedGeneration = 6L; // "a" wrote its entry at 6, another gateway wrote at 7

    assertThat(ProgrammedState.of("a", entry, state)).isEqualTo(ProgrammedState.PENDING);
    assertThat(ProgrammedState.of("a", entry, state, 6L)).isEqualTo(ProgrammedState.PROGRAMMED);
    assertThat(ProgrammedState.of("a", entry, state, 7L)).isEqualTo(ProgrammedState.PENDING);
    // A state recreated since (its generation starts again): the recorded write says nothing about it.
    assertThat(ProgrammedState.of("a", entry, state, 40L)).isEqualTo(ProgrammedState.PENDING);
  }
}
