package io.natgate.plan;

import io.natgate.api.v1alpha1.ConnectionLogState;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import io.natgate.api.v1alpha1.NodeGatewayState;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;

/**
 * Planned moves are make-before-break (pure). When the plan takes an egress IP away from a node whose agent is alive
 * and reports holding it (its node was cordoned, drained, unlabeled, deleted or edited out of the gateway, or the IP
 * was removed from the spec), that node keeps the IP, with the SNAT it had, as {@code releasing} until the new holder
 * reports holding it and every live node has applied the new plan; only then does the plan drop it. The handshake goes
 * through the operator, not the peers: the confirmation is the new holder's own report (after its kernel has the
 * address and the SNAT), there is one writer of assignments, and it works the same for groups on the Lease rule. The
 * price is an overlap of one round trip through the API server (status report, watch, node-state write, apply)
 * during which both nodes hold the IP; the new holder's gratuitous ARP (repeated for 3 s) wins the neighbours.
 * <p>
 * An IP new to the gateway joins the pods' mapping only once a node reports holding it, so that no pod is moved to an
 * IP that nobody holds yet.
 */
public final class Handovers {
  private Handovers() {
  }

  /**
   * The node states to write: {@code planned}, or, while a planned move is in progress, {@code planned} with each
   * releasing node keeping its IP.
   *
   * @param observed   the gateway's node states as observed, by node (spec and status)
   * @param liveAgents nodes whose agent renewed its Lease lately (a dead agent's IP is not handed over: it failed)
   * @param takenOver  IPs a standby took over unplanned (adopted, not handed over)
   */
  public static Map<String, EgressNodeStateSpec> makeBeforeBreak(Map<String, EgressNodeStateSpec> planned,
      Map<String, EgressNodeState> observed, Set<String> liveAgents, Map<String, String> takenOver) {
    Map<String, EgressNodeStateSpec> desired = new TreeMap<>();
    planned.forEach((node, spec) -> desired.put(node, copy(spec)));
    Map<String, String> releasing = new TreeMap<>(); // egress IP -> node keeping it
    new TreeMap<>(observed).forEach((node, state) -> {
      if (!liveAgents.contains(node) || state.getSpec() == null || state.getStatus() == null
          || state.getStatus().held == null) {
        return;
      }
      for (NodeGatewayState.Snat s : state.getSpec().snat) {
        if (s.holdAddress && state.getStatus().held.contains(s.egressIP) && !takenOver.containsKey(s.egressIP)
            && !holds(planned.get(node), s.egressIP) && !releasing.containsKey(s.egressIP)) {
          releasing.put(s.egressIP, node);
          keep(desired, node, state.getSpec(), s);
        }
      }
    });
    if (releasing.isEmpty() || settled(desired, observed, liveAgents, releasing)) {
      return planned;
    }
    return desired;
  }

  /**
   * The assigned egress IPs pods may be mapped to: all but those new to the gateway (no node reports holding them and
   * no observed state maps a pod to them), unless that leaves none.
   */
  public static List<String> mappable(List<String> assigned, Map<String, EgressNodeState> observed) {
    List<String> known = assigned.stream().filter(ip -> observed.values().stream().anyMatch(st -> mapsOrHolds(st, ip)))
        .toList();
    return known.isEmpty() ? assigned : known;
  }

  private static boolean mapsOrHolds(EgressNodeState st, String ip) {
    if (st.getStatus() != null && st.getStatus().held != null && st.getStatus().held.contains(ip)) {
      return true;
    }
    EgressNodeStateSpec spec = st.getSpec();
    return spec != null && (spec.snat.stream().anyMatch(s -> ip.equals(s.egressIP) && !s.sources.isEmpty())
        || spec.steer.stream().anyMatch(s -> ip.equals(s.egressIP)));
  }

  /** Whether the new holder reports holding each handed-over IP and every live node applied what it is given now. */
  private static boolean settled(Map<String, EgressNodeStateSpec> desired, Map<String, EgressNodeState> observed,
      Set<String> liveAgents, Map<String, String> releasing) {
    for (var e : desired.entrySet()) {
      EgressNodeState seen = observed.get(e.getKey());
      if (!liveAgents.contains(e.getKey())) {
        continue; // a dead agent applies nothing: it cannot hold a handover up
      }
      if (seen == null || !e.getValue().equals(seen.getSpec()) || seen.getStatus() == null
          || !Objects.equals(seen.getStatus().appliedGeneration, seen.getMetadata().getGeneration())) {
        return false;
      }
    }
    for (String ip : releasing.keySet()) {
      String holder = desired.values().stream().filter(s -> s.snat.stream()
          .anyMatch(x -> ip.equals(x.egressIP) && x.holdAddress) && !s.nodeName.equals(releasing.get(ip)))
          .map(s -> s.nodeName).findFirst().orElse(null);
      EgressNodeState seen = holder == null ? null : observed.get(holder);
      if (holder != null && (seen == null || seen.getStatus() == null || seen.getStatus().held == null
          || !seen.getStatus().held.contains(ip))) {
        return false;
      }
    }
    return true;
  }

  private static boolean holds(EgressNodeStateSpec spec, String ip) {
    return spec != null && spec.snat.stream().anyMatch(s -> ip.equals(s.egressIP) && s.holdAddress);
  }

  /**
   * The releasing node keeps the SNAT it had and, in a peer group, every succession of the IP names it (a removed IP
   * gets one of its own, held by the releasing node alone).
   */
  private static void keep(Map<String, EgressNodeStateSpec> desired, String node, EgressNodeStateSpec was,
      NodeGatewayState.Snat snat) {
    EgressNodeStateSpec mine = desired.computeIfAbsent(node, n -> {
      EgressNodeStateSpec s = new EgressNodeStateSpec();
      s.nodeName = node;
      s.gateway = was.gateway;
      s.failurePolicy = was.failurePolicy;
      s.cidrs = was.cidrs;
      s.excludedCidrs = was.excludedCidrs;
      s.allow = was.allow;
      return s;
    });
    mine.snat.removeIf(s -> snat.egressIP.equals(s.egressIP));
    mine.snat.add(new NodeGatewayState.Snat(snat.egressIP, true, snat.sources));
    mine.connectionLog = ConnectionLogState.keeping(mine.connectionLog, snat.sources, was.connectionLog);
    boolean named = false;
    for (EgressNodeStateSpec s : desired.values()) {
      if (s.peers != null) {
        for (NodeGatewayState.Succession x : s.peers.successions) {
          if (snat.egressIP.equals(x.egressIP)) {
            x.releasing = node;
            named = true;
          }
        }
      }
    }
    if (!named && mine.peers != null) {
      mine.peers.successions.add(new NodeGatewayState.Succession(snat.egressIP, node, List.of(), node));
    }
  }

  /** A copy whose lists and peer section may be changed without touching the original. */
  private static EgressNodeStateSpec copy(EgressNodeStateSpec spec) {
    EgressNodeStateSpec c = new EgressNodeStateSpec(spec.nodeName, spec.gateway, spec);
    c.allow = spec.allow;
    c.snat = new ArrayList<>(spec.snat);
    if (spec.peers != null) {
      c.peers = new NodeGatewayState.Peers();
      c.peers.members = spec.peers.members;
      c.peers.standby = spec.peers.standby;
      c.peers.successions = new ArrayList<>();
      spec.peers.successions.forEach(x -> c.peers.successions.add(
          new NodeGatewayState.Succession(x.egressIP, x.holder, x.standbys, x.releasing)));
    }
    return c;
  }
}
