package io.natgate.plan;

import io.fabric8.kubernetes.api.model.Node;
import io.natgate.Sha256;
import io.natgate.api.v1alpha1.Assignment;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import io.natgate.api.v1alpha1.NodeGatewayState;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;

/**
 * Who watches whom for a gateway (pure): its candidates plus a few witnesses (other nodes with a live agent, chosen
 * by rendezvous hashing on the gateway's name, so that a node coming or going moves few groups), and for each
 * egress IP the order in which the ready candidates would take it over. Heartbeats then grow with the candidates,
 * not with the square of the nodes.
 */
public final class PeerGroups {
  /** The fewest members for which a group can keep a quorum through the loss of one; smaller ones use Leases. */
  public static final int MIN_GROUP = 3;
  /** Witnesses added to each group: enough for a quorum with two candidates, and to survive a witness's loss. */
  public static final int WITNESSES = 3;

  private PeerGroups() {
  }

  /** The group of {@code gateway}: candidates with an InternalIP, then witnesses, sorted by name. */
  public static List<NodeGatewayState.Member> members(String gateway, List<String> candidates,
      ClusterSnapshot cluster) {
    Map<String, String> members = new TreeMap<>();
    candidates.forEach(n -> {
      String ip = NodeReadiness.internalIP(cluster.nodes().get(n));
      if (ip != null) {
        members.put(n, ip);
      }
    });
    cluster.nodes().values().stream()
        .filter(n -> !candidates.contains(n.getMetadata().getName()))
        .filter(n -> NodeReadiness.isReady(n, cluster.liveAgents()))
        .sorted(Comparator.comparing((Node n) -> rendezvous(gateway, n.getMetadata().getName())))
        .limit(WITNESSES)
        .forEach(n -> members.put(n.getMetadata().getName(), NodeReadiness.internalIP(n)));
    List<NodeGatewayState.Member> list = new ArrayList<>();
    members.forEach((name, ip) -> list.add(new NodeGatewayState.Member(name, ip)));
    return list;
  }

  /**
   * The ready candidates other than the holder, in the order the operator would place the IP if its holder left:
   * fewest egress IPs held first, ties by name.
   */
  public static List<String> standbys(String holder, Collection<String> ready, List<Assignment> assignments) {
    Map<String, Long> load = new TreeMap<>();
    ready.forEach(n -> load.put(n, assignments.stream().filter(a -> n.equals(a.node)).count()));
    return load.entrySet().stream().filter(e -> !e.getKey().equals(holder))
        .sorted(Map.Entry.<String, Long>comparingByValue().thenComparing(Map.Entry.comparingByKey()))
        .map(Map.Entry::getKey).toList();
  }

  /**
   * Egress IPs that a node's agent reports holding although its current state does not assign them to it: a standby
   * that took over (with or without the API server). By IP; the first node by name when two report one.
   */
  public static Map<String, String> takeovers(Map<String, EgressNodeState> states) {
    Map<String, String> taken = new TreeMap<>();
    new TreeMap<>(states).forEach((node, st) -> {
      var status = st.getStatus();
      EgressNodeStateSpec spec = st.getSpec();
      if (status == null || status.held == null || spec == null
          || !Objects.equals(status.appliedGeneration, st.getMetadata().getGeneration())) {
        return;
      }
      status.held.stream().filter(ip -> spec.snat.stream().noneMatch(s -> ip.equals(s.egressIP) && s.holdAddress))
          .forEach(ip -> taken.putIfAbsent(ip, node));
    });
    return taken;
  }

  /** Whether the node may hold egress IPs but for its agent's Lease. */
  static boolean readyButForLease(Node node) {
    return NodeReadiness.isReady(node, Set.of(node.getMetadata().getName()));
  }

  private static String rendezvous(String gateway, String node) {
    return Sha256.hex(gateway + "/" + node, 8);
  }
}
