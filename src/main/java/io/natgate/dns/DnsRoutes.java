package io.natgate.dns;

import io.natgate.api.v1alpha1.FailurePolicy;
import io.natgate.api.v1alpha1.NodeGatewayState;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Whose DNS this node follows and where the pairs of each answer go, and which pairs it accepts from other nodes:
 * pure functions of this node's states (by gateway name).
 */
public final class DnsRoutes {
  private DnsRoutes() {
  }

  /**
   * Where one pod's answers for one gateway's names go.
   *
   * @param egressIP the gateway checking the pod's connections is whichever node holds this IP: pairs are sent there,
   *                 so that a failover changes nothing here (as with the tunnel); null: no node holds it
   * @param local    this node SNATs the pod itself: the pairs go into its own sets
   */
  public record Route(String gateway, List<String> fqdns, FailurePolicy failurePolicy, String egressIP,
      boolean local) {
  }

  /** The DNS names of a gateway's allow list (none: its pods' DNS is left alone). */
  public static List<String> fqdns(NodeGatewayState s) {
    return s.allow == null ? List.of() : s.allow.stream().map(e -> e.fqdn).filter(f -> f != null).distinct().toList();
  }

  /**
   * By pod IP, the routes of the pods this node answers DNS for: the director role's steered pods, and the sources
   * of the egress IPs this node SNATs (only its own pods' queries reach it: other nodes' pods are answered by their
   * node), of gateways whose allow list has DNS names.
   */
  public static Map<String, List<Route>> byPod(Map<String, ? extends NodeGatewayState> states) {
    Map<String, List<Route>> routes = new TreeMap<>();
    new TreeMap<>(states).forEach((gateway, s) -> {
      List<String> fqdns = fqdns(s);
      if (fqdns.isEmpty()) {
        return;
      }
      for (NodeGatewayState.Steer st : s.steer) {
        String egressIP = st.gatewayNode == null ? null : st.egressIP;
        st.sources.forEach(pod -> routes.computeIfAbsent(pod, k -> new ArrayList<>())
            .add(new Route(gateway, fqdns, s.failurePolicy, egressIP, false)));
      }
      for (NodeGatewayState.Snat sn : s.snat) {
        sn.sources.forEach(pod -> routes.computeIfAbsent(pod, k -> new ArrayList<>())
            .add(new Route(gateway, fqdns, s.failurePolicy, sn.egressIP, true)));
      }
    });
    return routes;
  }

  /**
   * Whether this node takes pairs for {@code fqdn} of {@code pods} from another node: the name is in the gateway's
   * allow list and every pod is a source of an egress IP this node holds or stands by for. Anything else would let
   * a node open the gateway for pods it does not send, or for names not allowed.
   */
  public static boolean accepts(NodeGatewayState s, String fqdn, Collection<String> pods) {
    if (s == null || !fqdns(s).contains(fqdn)) {
      return false;
    }
    Set<String> sources = new HashSet<>();
    s.snat.forEach(sn -> sources.addAll(sn.sources));
    if (s.peers != null) {
      s.peers.standby.forEach(sn -> sources.addAll(sn.sources));
    }
    return sources.containsAll(pods);
  }

  /**
   * The node IPs that must also get pairs of {@code pods} for a failover to keep them: every other node of the
   * successions (holder and standbys) of the egress IPs those pods leave with. Empty without a peer group (the Lease
   * rule has no standbys).
   */
  public static Set<String> relayTo(NodeGatewayState s, String self, Collection<String> pods) {
    if (s == null || s.peers == null) {
      return Set.of();
    }
    Set<String> egressIPs = new HashSet<>();
    s.snat.stream().filter(sn -> pods.stream().anyMatch(sn.sources::contains)).forEach(sn -> egressIPs.add(sn.egressIP));
    s.peers.standby.stream().filter(sn -> pods.stream().anyMatch(sn.sources::contains))
        .forEach(sn -> egressIPs.add(sn.egressIP));
    Set<String> nodes = new TreeSet<>();
    s.peers.successions.stream().filter(su -> egressIPs.contains(su.egressIP)).forEach(su -> {
      nodes.add(su.holder);
      nodes.addAll(su.standbys);
    });
    nodes.remove(self);
    Set<String> ips = new TreeSet<>();
    s.peers.members.stream().filter(m -> nodes.contains(m.name) && m.ip != null).forEach(m -> ips.add(m.ip));
    return ips;
  }
}
