package io.natgate.plan;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class IpAssignmentTest {
  static Stream<Arguments> cases() {
    return Stream.of(
        Arguments.of("spread evenly, in IP order", List.of("198.18.0.3", "198.18.0.1", "198.18.0.2"),
            List.of("n1", "n2"), Map.of(), "198.18.0.3=n1 198.18.0.1=n1 198.18.0.2=n2"),
        Arguments.of("sticky while the node is ready, even when unbalanced", List.of("198.18.0.1", "198.18.0.2"),
            List.of("n1", "n2"), Map.of("198.18.0.1", "n2", "198.18.0.2", "n2"), "198.18.0.1=n2 198.18.0.2=n2"),
        Arguments.of("failover: an IP leaves a node that is no longer ready", List.of("198.18.0.1", "198.18.0.2"),
            List.of("n2", "n3"), Map.of("198.18.0.1", "n1", "198.18.0.2", "n2"), "198.18.0.1=n3 198.18.0.2=n2"),
        Arguments.of("no ready node: unassigned", List.of("198.18.0.1"), List.of(), Map.of("198.18.0.1", "n1"),
            "198.18.0.1=null"),
        Arguments.of("numeric, not text, order of IPs", List.of("198.18.0.10", "198.18.0.9"), List.of("a", "b"),
            Map.of(), "198.18.0.10=b 198.18.0.9=a"),
        Arguments.of("a new IP goes to the least loaded node", List.of("198.18.0.1", "198.18.0.2", "198.18.0.3"),
            List.of("n1", "n2"), Map.of("198.18.0.1", "n1", "198.18.0.2", "n1"),
            "198.18.0.1=n1 198.18.0.2=n1 198.18.0.3=n2"));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("cases")
  void assigns(String why, List<String> ips, List<String> ready, Map<String, String> previous, String expected) {
    assertThat(render(IpAssignment.assign(ips, ready, previous))).isEqualTo(expected);
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("cases")
  void isDeterministicWhateverTheOrderOfNodes(String why, List<String> ips, List<String> ready,
      Map<String, String> previous, String expected) {
    List<String> reversed = new java.util.ArrayList<>(ready);
    java.util.Collections.reverse(reversed);
    assertThat(render(IpAssignment.assign(ips, reversed, previous))).isEqualTo(expected);
  }

  @org.junit.jupiter.api.Test
  void staysBalancedOverManyIPs() {
    List<String> ips = Stream.iterate(1, i -> i + 1).limit(12).map(i -> "198.18.0." + i).toList();
    Map<String, Integer> perNode = new HashMap<>();
    IpAssignment.assign(ips, List.of("a", "b", "c"), Map.of()).values().forEach(n -> perNode.merge(n, 1, Integer::sum));
    assertThat(perNode).containsOnly(Map.entry("a", 4), Map.entry("b", 4), Map.entry("c", 4));
  }

  private static String render(Map<String, String> assignment) {
    return String.join(" ", assignment.entrySet().stream().map(e -> e.getKey() + "=" + e.getValue()).toList());
  }
}
