package io.natgate.plan;

import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.ObjectMetaBuilder;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import io.natgate.api.v1alpha1.EgressNodeStateStatus;
import io.natgate.api.v1alpha1.NodeGatewayState;
import java.util.List;
import org.junit.jupiter.api.Test;

class ProgrammedStateTest {
  private static EgressNodeStateSpec desired(String... sources) {
    var part = new NodeGatewayState();
    part.snat.add(new NodeGatewayState.Snat("198.18.0.100", true, List.of(sources)));
    return new EgressNodeStateSpec("n1", "a", part);
  }

  private static EgressNodeState observed(EgressNodeStateSpec spec, long generation, Long applied, String error) {
    EgressNodeState state = new EgressNodeState();
    state.setMetadata(new ObjectMetaBuilder().withName(EgressNodeState.nameFor("a", "n1"))
        .withGeneration(generation).build());
    state.setSpec(spec);
    state.setStatus(new EgressNodeStateStatus());
    state.getStatus().appliedGeneration = applied;
    state.getStatus().error = error;
    return state;
  }

  @Test
  void programmedOnceTheAgentReportsTheCurrentGenerationOfTheWantedSpec() {
    var want = desired("198.19.1.2");
    assertThat(ProgrammedState.of(want, observed(want, 3, null, null))).isEqualTo(ProgrammedState.PENDING);
    assertThat(ProgrammedState.of(want, observed(want, 3, 2L, null))).isEqualTo(ProgrammedState.PENDING);
    assertThat(ProgrammedState.of(want, observed(want, 3, 3L, null))).isEqualTo(ProgrammedState.PROGRAMMED);
    // The cache still holds the spec before this write: not programmed whatever the agent reported on it.
    assertThat(ProgrammedState.of(want, observed(desired("198.19.1.3"), 3, 3L, null)))
        .isEqualTo(ProgrammedState.PENDING);
    assertThat(ProgrammedState.of(want, observed(want, 3, 2L, "ipset: failed"))).isEqualTo(ProgrammedState.FAILED);
  }

  @Test
  void nothingWantedIsProgrammedOnlyOnceTheStateIsGone() {
    assertThat(ProgrammedState.of(null, null)).isEqualTo(ProgrammedState.PROGRAMMED);
    assertThat(ProgrammedState.of(desired(), null)).isEqualTo(ProgrammedState.PENDING);
    assertThat(ProgrammedState.of(null, observed(desired(), 1, 1L, null))).isEqualTo(ProgrammedState.PENDING);
  }

  @Test
  void specsOfOtherNodesOrGatewaysAreNotEqualToPlainParts() {
    var part = new NodeGatewayState();
    assertThat(new EgressNodeStateSpec("n1", "a", part)).isEqualTo(new EgressNodeStateSpec("n1", "a", part))
        .isNotEqualTo(new EgressNodeStateSpec("n2", "a", part)).isNotEqualTo(new EgressNodeStateSpec("n1", "b", part))
        .isNotEqualTo(part);
    assertThat(part).isNotEqualTo(new EgressNodeStateSpec("n1", "a", part));
  }
}
