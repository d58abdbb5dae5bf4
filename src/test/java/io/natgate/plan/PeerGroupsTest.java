package io.natgate.plan;

import static io.natgate.plan.Fixtures.egressNode;
import static io.natgate.plan.Fixtures.node;
import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.ObjectMetaBuilder;
import io.natgate.api.v1alpha1.Assignment;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import io.natgate.api.v1alpha1.EgressNodeStateStatus;
import io.natgate.api.v1alpha1.NodeGatewayState;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

class PeerGroupsTest {
  @Test
  void aGroupIsTheCandidatesPlusThreeWitnessesWithLiveAgentsChosenByGatewayAndStableWhenOthersComeAndGo() {
    var nodes = new ArrayList<>(List.of(egressNode("e1", "198.18.0.11", true), egressNode("e2", "198.18.0.12", true)));
    IntStream.range(1, 30).forEach(i -> nodes.add(node("w" + i, "198.18.0." + (100 + i), true, Map.of())));
    var cluster = Fixtures.cluster(nodes, List.of(), List.of());
    var group = PeerGroups.members("pay", List.of("e1", "e2"), cluster);
    assertThat(group).hasSize(2 + PeerGroups.WITNESSES);
    assertThat(group).extracting(m -> m.name).contains("e1", "e2");
    var witnesses = group.stream().map(m -> m.name).filter(n -> n.startsWith("w")).toList();
    // another gateway gets other witnesses (spread), the same gateway the same ones when an unrelated node leaves
    assertThat(PeerGroups.members("shop", List.of("e1", "e2"), cluster)).extracting(m -> m.name)
        .isNotEqualTo(group.stream().map(m -> m.name).toList());
    String unrelated = IntStream.range(1, 30).mapToObj(i -> "w" + i).filter(n -> !witnesses.contains(n)).findFirst()
        .orElseThrow();
    nodes.removeIf(n -> n.getMetadata().getName().equals(unrelated));
    assertThat(PeerGroups.members("pay", List.of("e1", "e2"), Fixtures.cluster(nodes, List.of(), List.of())))
        .isEqualTo(group);
    // a witness whose agent is not live is replaced
    var c = Fixtures.cluster(nodes, List.of(), List.of());
    var live = new java.util.HashSet<>(c.liveAgents());
    live.remove(witnesses.get(0));
    var withoutOne = new ClusterSnapshot(c.nodes(), c.pods(), c.namespaceLabels(), c.gateways(), c.clusterCidrs(), live);
    assertThat(PeerGroups.members("pay", List.of("e1", "e2"), withoutOne)).extracting(m -> m.name)
        .doesNotContain(witnesses.get(0)).hasSize(5);
  }

  @Test
  void standbysAreTheOtherReadyCandidatesLeastLoadedFirst() {
    var assignments = List.of(new Assignment("198.18.0.100", "a", null), new Assignment("198.18.0.101", "b", null),
        new Assignment("198.18.0.102", "b", null));
    assertThat(PeerGroups.standbys("a", Set.of("a", "b", "c", "d"), assignments)).containsExactly("c", "d", "b");
  }

  @Test
  void aTakeoverIsAnIPHeldByANodeWhoseAppliedStateDoesNotAssignItToIt() {
    assertThat(PeerGroups.takeovers(Map.of(
        "standby", state(2L, 2L, List.of(), List.of("198.18.0.100")),
        "holder", state(3L, 3L, List.of("198.18.0.101"), List.of("198.18.0.101")),
        "stale", state(5L, 4L, List.of(), List.of("198.18.0.102")))))
        .containsExactly(Map.entry("198.18.0.100", "standby"));
  }

  static EgressNodeState state(long generation, long applied, List<String> assigned, List<String> held) {
    var st = new EgressNodeState();
    st.setMetadata(new ObjectMetaBuilder().withName("x").withGeneration(generation).build());
    st.setSpec(new EgressNodeStateSpec());
    assigned.forEach(ip -> st.getSpec().snat.add(new NodeGatewayState.Snat(ip, true, List.of())));
    st.setStatus(new EgressNodeStateStatus());
    st.getStatus().appliedGeneration = applied;
    st.getStatus().held = held;
    return st;
  }
}
