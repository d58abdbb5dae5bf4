package io.natgate.plan;

import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Assigns egress IPs to ready nodes. Sticky: an IP stays on its node while that node is ready and a candidate.
 * The others go, in IP order, to the ready node holding the fewest (ties: node name), so the result depends only
 * on the inputs.
 */
public final class IpAssignment {
  private IpAssignment() {
  }

  /**
   * @param ips        the IPs to place, in spec order
   * @param readyNodes ready candidate nodes
   * @param previous   IP to node, from the last status
   * @return IP to node in the order of {@code ips}; an IP maps to null when no node is ready
   */
  public static Map<String, String> assign(List<String> ips, Collection<String> readyNodes,
      Map<String, String> previous) {
    return assign(ips, readyNodes, Set.of(), previous);
  }

  /**
   * @param keptBy nodes that are not ready but keep the IPs they have (not given new ones): with peer liveness, a
   *               node whose only fault is its agent's Lease (the API is what failed, or the agent: then its peers
   *               move the IP, and report it)
   */
  public static Map<String, String> assign(List<String> ips, Collection<String> readyNodes, Set<String> keptBy,
      Map<String, String> previous) {
    Map<String, Integer> load = new TreeMap<>();
    readyNodes.forEach(n -> load.put(n, 0));
    Map<String, String> result = new HashMap<>();
    for (String ip : ips) {
      String node = previous.get(ip);
      if (node != null && load.containsKey(node)) {
        result.put(ip, node);
        load.merge(node, 1, Integer::sum);
      } else if (node != null && keptBy.contains(node)) {
        result.put(ip, node);
      }
    }
    ips.stream().filter(ip -> !result.containsKey(ip)).sorted(IpAddresses.ORDER).forEach(ip -> {
      String least = load.entrySet().stream().min(Map.Entry.comparingByValue()).map(Map.Entry::getKey).orElse(null);
      result.put(ip, least);
      if (least != null) {
        load.merge(least, 1, Integer::sum);
      }
    });
    Map<String, String> ordered = new LinkedHashMap<>();
    ips.forEach(ip -> ordered.put(ip, result.get(ip)));
    return ordered;
  }
}
