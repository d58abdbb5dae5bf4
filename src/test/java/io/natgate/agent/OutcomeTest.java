package io.natgate.agent;

import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.ObjectMetaBuilder;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import io.natgate.api.v1alpha1.EgressNodeStateStatus;
import io.natgate.api.v1alpha1.NodeGatewayState;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class OutcomeTest {
  static EgressNodeState state(String name, long generation, Long applied) {
    var s = new EgressNodeState();
    s.setMetadata(new ObjectMetaBuilder().withName(name).withGeneration(generation).build());
    if (applied != null) {
      s.setStatus(new EgressNodeStateStatus());
      s.getStatus().appliedGeneration = applied;
    }
    return s;
  }

  @Test
  void aSuccessReportsTheGenerationThatWasAppliedNotTheOneThatCameSince() {
    Outcome o = Outcome.applied(List.of(state("a", 3, 2L)), Set.of());
    assertThat(o.statusFor(state("a", 4, 2L)).appliedGeneration).isEqualTo(3L);
    assertThat(o.statusFor(state("a", 4, 2L)).error).isNull();
    assertThat(o.statusFor(state("new", 1, null))).as("not seen by the apply yet").isNull();
  }

  @Test
  void aFailureKeepsTheLastAppliedGenerationAndCutsLongErrors() {
    EgressNodeStateStatus s = Outcome.failed("x".repeat(5000), Set.of()).statusFor(state("a", 4, 2L));
    assertThat(s.appliedGeneration).isEqualTo(2L);
    assertThat(s.error).hasSize(Outcome.MAX_ERROR_LENGTH);
  }

  @Test
  void eachStateReportsTheEgressIPsOfItsOwnGatewayThatAreHeldHere() {
    var a = state("a", 1, null);
    var part = new NodeGatewayState();
    part.snat.add(new NodeGatewayState.Snat("198.18.0.101", true, List.of()));
    part.snat.add(new NodeGatewayState.Snat("198.18.0.100", true, List.of()));
    a.setSpec(new EgressNodeStateSpec("node-1", "a", part));
    var held = Set.of("198.18.0.100", "198.18.0.101", "198.18.0.200");
    assertThat(Outcome.applied(List.of(a), held).statusFor(a).held).containsExactly("198.18.0.100", "198.18.0.101");
    assertThat(Outcome.failed("boom", Set.of("198.18.0.100")).statusFor(a).held).containsExactly("198.18.0.100");
    assertThat(Outcome.applied(List.of(a), Set.of("198.18.0.200")).statusFor(a).held).isNull();
  }

  @Test
  void backoffDoublesUpToItsLimitAndStartsOverAfterASuccess() {
    var b = new Backoff(Duration.ofSeconds(1), Duration.ofSeconds(5));
    assertThat(List.of(b.next(), b.next(), b.next(), b.next())).containsExactly(Duration.ofSeconds(1),
        Duration.ofSeconds(2), Duration.ofSeconds(4), Duration.ofSeconds(5));
    b.reset();
    assertThat(b.next()).isEqualTo(Duration.ofSeconds(1));
  }
}
