package io.natgate.agent;

import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.ObjectMetaBuilder;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateStatus;
import java.time.Duration;
import java.util.List;
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
    Outcome o = Outcome.applied(List.of(state("a", 3, 2L)));
    assertThat(o.statusFor(state("a", 4, 2L)).appliedGeneration).isEqualTo(3L);
    assertThat(o.statusFor(state("a", 4, 2L)).error).isNull();
    assertThat(o.statusFor(state("new", 1, null))).as("not seen by the apply yet").isNull();
  }

  @Test
  void aFailureKeepsTheLastAppliedGenerationAndCutsLongErrors() {
    EgressNodeStateStatus s = Outcome.failed("x".repeat(5000)).statusFor(state("a", 4, 2L));
    assertThat(s.appliedGeneration).isEqualTo(2L);
    assertThat(s.error).hasSize(Outcome.MAX_ERROR_LENGTH);
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
