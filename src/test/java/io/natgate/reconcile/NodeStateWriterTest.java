package io.natgate.reconcile;

import static org.assertj.core.api.Assertions.assertThat;

import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import io.natgate.api.v1alpha1.NodeGatewayState;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class NodeStateWriterTest {

  static EgressNodeStateSpec spec(String node, String... snatSources) {
    var part = new NodeGatewayState();
    part.snat = List.of(new NodeGatewayState.Snat("198.18.0.100", true, List.of(snatSources)));
    return new EgressNodeStateSpec(node, "payments", part);
  }

  static EgressNodeState observed(EgressNodeStateSpec spec) {
    var state = new EgressNodeState();
    state.setSpec(spec);
    return state;
  }

  @Test
  void onlyStatesToWriteOrDeleteDiffer() {
    Map<String, EgressNodeStateSpec> desired = Map.of(
        "same", spec("same", "198.19.1.1"),
        "onePodMore", spec("onePodMore", "198.19.1.1", "198.19.2.2"),
        "new", spec("new"));
    Map<String, EgressNodeState> current = Map.of(
        "same", observed(spec("same", "198.19.1.1")),
        "onePodMore", observed(spec("onePodMore", "198.19.1.1")),
        "gone", observed(spec("gone")));
    assertThat(NodeStateWriter.differing(desired, current)).containsExactly("gone", "new", "onePodMore");
  }

  @Test
  void nothingDiffersWhenEveryStateIsAsWanted() {
    assertThat(NodeStateWriter.differing(Map.of("a", spec("a", "198.19.1.1")),
        Map.of("a", observed(spec("a", "198.19.1.1"))))).isEmpty();
    assertThat(NodeStateWriter.differing(Map.of(), Map.of())).isEmpty();
  }
}
