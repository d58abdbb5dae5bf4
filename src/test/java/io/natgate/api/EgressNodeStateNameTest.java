package io.natgate.api;

import static org.assertj.core.api.Assertions.assertThat;

import io.natgate.api.v1alpha1.EgressNodeState;
import org.junit.jupiter.api.Test;

class EgressNodeStateNameTest {
  /** Kubernetes' DNS-1123 subdomain: what a cluster-scoped custom resource's name must be. */
  static final String SUBDOMAIN = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";

  @Test
  void readableAndDistinctWhenDotsCouldMakeTwoPairsLookAlike() {
    assertThat(EgressNodeState.nameFor("payments", "node-1")).startsWith("payments.node-1-").matches(SUBDOMAIN);
    assertThat(EgressNodeState.nameFor("a.b", "c")).isNotEqualTo(EgressNodeState.nameFor("a", "b.c"));
    assertThat(EgressNodeState.nameFor("a", "b")).isEqualTo(EgressNodeState.nameFor("a", "b"));
  }

  @Test
  void longestNamesFitAndStayValid() {
    String gateway = "g".repeat(114) + "." + "x".repeat(138);
    String node = "n".repeat(114) + "-" + "y".repeat(138);
    String name = EgressNodeState.nameFor(gateway, node);
    assertThat(name.length()).isLessThanOrEqualTo(253);
    assertThat(name).matches(SUBDOMAIN);
    assertThat(name).isNotEqualTo(EgressNodeState.nameFor(gateway + "z", node));
  }
}
