package io.natgate.plan;

import io.natgate.api.v1alpha1.ConnectionLogState;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import io.natgate.api.v1alpha1.NodeGatewayState;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;

/**
 * A pod whose egress IP changes (an IP added to or removed from the gateway spreads the pods anew) moves
 * make-before-break, in three writes (pure): the new IP's holder SNATs it; once that holder has applied it, the pod's
 * node steers it to the new IP; once that node has applied it, the old IP's holder stops SNATing it. In one write the
 * agents apply in any order, and a new connection of the pod is dropped at a holder that does not SNAT it yet, or no
 * longer does. A node whose agent is not live holds nothing up (it applies nothing).
 */
public final class PodMoves {
  private PodMoves() {
  }

  /**
   * @param planned    the node states the plan wants
   * @param observed   the gateway's node states as observed (spec written, status applied), by node
   * @param liveAgents nodes whose agent renewed its Lease lately
   * @param podNodes   the node of each selected pod, by pod IP
   * @return {@code planned}, with the moves not yet due held back
   */
  public static Map<String, EgressNodeStateSpec> staged(Map<String, EgressNodeStateSpec> planned,
      Map<String, EgressNodeState> observed, Set<String> liveAgents, Map<String, String> podNodes) {
    Written written = new Written(observed);
    Held held = new Held();
    planned.forEach((holder, spec) -> spec.snat.stream().filter(s -> s.holdAddress).forEach(s -> s.sources
        .forEach(pod -> stage(held, written, liveAgents, pod, podNodes.get(pod), s.egressIP, holder))));
    if (held.isEmpty()) {
      return planned;
    }
    Map<String, EgressNodeStateSpec> desired = new TreeMap<>();
    planned.forEach((node, spec) -> desired.put(node, held.applyTo(spec, observed.get(node))));
    return desired;
  }

  /** Holds back the move of {@code pod} (on {@code node}) to {@code egressIP}, held by {@code holder}, as due. */
  private static void stage(Held held, Written written, Set<String> liveAgents, String pod, String node,
      String egressIP, String holder) {
    if (node == null || !liveAgents.contains(node)) {
      return;
    }
    String was = written.leavesBy(node, pod);
    if (egressIP.equals(was) && written.applied(node)) {
      return; // moved (or never moving)
    }
    boolean newSnatApplied = written.applied(holder) && written.snats(holder, egressIP, pod);
    NodeGatewayState.Steer steer = written.steer(node, pod); // null: its node SNATed it itself
    if (was != null && !was.equals(egressIP) && !newSnatApplied && liveAgents.contains(holder)
        && (steer == null || liveAgents.contains(steer.gatewayNode))) {
      held.steers.computeIfAbsent(node, n -> new HashMap<>()).put(pod, steer);
    }
    // Until its node steers it to the new IP, a node that SNATs it to another IP and still holds that IP keeps it.
    written.snattedElsewhere(pod, egressIP).forEach((other, ip) -> held.snats.computeIfAbsent(other,
        n -> new HashMap<>()).computeIfAbsent(ip, i -> new HashSet<>()).add(pod));
  }

  /** The moves held back, by node: pods steered as written, pods kept in an SNAT. */
  private static final class Held {
    /** node -> pod -> the steer entry written for it, kept (null: steered nowhere, its node SNATs it) */
    final Map<String, Map<String, NodeGatewayState.Steer>> steers = new HashMap<>();
    /** node -> egress IP -> pods kept in its SNAT */
    final Map<String, Map<String, Set<String>>> snats = new HashMap<>();

    boolean isEmpty() {
      return steers.isEmpty() && snats.isEmpty();
    }

    /**
     * A copy of the spec with the held-back moves (its own lists; the spec is left alone), naming the pods kept in
     * its SNAT as {@code was} (the node's state as observed) did.
     */
    EgressNodeStateSpec applyTo(EgressNodeStateSpec spec, EgressNodeState was) {
      EgressNodeStateSpec c = new EgressNodeStateSpec(spec.nodeName, spec.gateway, spec);
      c.allow = spec.allow;
      Map<String, Set<String>> kept = snats.getOrDefault(spec.nodeName, Map.of());
      c.snat = spec.snat.stream().map(s -> !s.holdAddress || !kept.containsKey(s.egressIP) ? s
          : new NodeGatewayState.Snat(s.egressIP, true, union(s.sources, kept.get(s.egressIP)))).toList();
      if (was != null && was.getSpec() != null) {
        c.connectionLog = ConnectionLogState.keeping(spec.connectionLog,
            kept.values().stream().flatMap(Set::stream).toList(), was.getSpec().connectionLog);
      }
      Map<String, NodeGatewayState.Steer> asWritten = steers.getOrDefault(spec.nodeName, Map.of());
      if (!asWritten.isEmpty()) {
        c.steer = steerAsWritten(spec.steer, asWritten);
      }
      return c;
    }
  }

  /**
   * The steer entries with each pod of {@code asWritten} moved back to the entry it was written in (the egress IP,
   * and the gateway node as written when the plan no longer steers to that IP), or to none, in the planner's order.
   */
  private static List<NodeGatewayState.Steer> steerAsWritten(List<NodeGatewayState.Steer> planned,
      Map<String, NodeGatewayState.Steer> asWritten) {
    Map<String, NodeGatewayState.Steer> byIP = new TreeMap<>();
    Map<String, Set<String>> sources = new TreeMap<>();
    for (NodeGatewayState.Steer st : planned) {
      String key = st.egressIP == null ? "" : st.egressIP;
      byIP.put(key, st);
      sources.computeIfAbsent(key, k -> new HashSet<>()).addAll(st.sources);
    }
    asWritten.forEach((pod, was) -> {
      sources.values().forEach(s -> s.remove(pod));
      if (was != null) {
        byIP.putIfAbsent(was.egressIP, was);
        sources.computeIfAbsent(was.egressIP, k -> new HashSet<>()).add(pod);
      }
    });
    List<NodeGatewayState.Steer> out = new ArrayList<>();
    byIP.forEach((key, st) -> {
      if (!sources.get(key).isEmpty()) {
        out.add(new NodeGatewayState.Steer(st.egressIP, st.gatewayNode, st.gatewayNodeIP,
            sorted(sources.get(key))));
      }
    });
    return out;
  }

  /** What the observed node states say, indexed by pod: where each node sends it, who SNATs it to what. */
  private static final class Written {
    private final Map<String, EgressNodeState> observed;
    /** node -> pod -> the egress IP that node's spec sends it to */
    private final Map<String, Map<String, String>> leaves = new HashMap<>();
    /** node -> pod -> the steer entry that lists it */
    private final Map<String, Map<String, NodeGatewayState.Steer>> steers = new HashMap<>();
    /** pod -> node -> the egress IP that node SNATs it to (holding it) */
    private final Map<String, Map<String, String>> snatted = new HashMap<>();

    Written(Map<String, EgressNodeState> observed) {
      this.observed = observed;
      observed.forEach((node, st) -> {
        EgressNodeStateSpec spec = st.getSpec();
        if (spec == null) {
          return;
        }
        Map<String, String> leave = leaves.computeIfAbsent(node, n -> new HashMap<>());
        for (NodeGatewayState.Snat s : spec.snat) {
          if (s.holdAddress) {
            s.sources.forEach(pod -> {
              leave.putIfAbsent(pod, s.egressIP);
              snatted.computeIfAbsent(pod, p -> new TreeMap<>()).put(node, s.egressIP);
            });
          }
        }
        for (NodeGatewayState.Steer st2 : spec.steer) { // steering wins over the node's own SNAT (the mark goes first)
          st2.sources.forEach(pod -> {
            leave.put(pod, st2.gatewayNode == null ? null : st2.egressIP);
            steers.computeIfAbsent(node, n -> new HashMap<>()).put(pod, st2);
          });
        }
      });
    }

    String leavesBy(String node, String pod) {
      return leaves.getOrDefault(node, Map.of()).get(pod);
    }

    NodeGatewayState.Steer steer(String node, String pod) {
      return steers.getOrDefault(node, Map.of()).get(pod);
    }

    boolean snats(String node, String egressIP, String pod) {
      return egressIP.equals(snatted.getOrDefault(pod, Map.of()).get(node));
    }

    /** The nodes that SNAT the pod to an IP other than {@code egressIP}, with that IP. */
    Map<String, String> snattedElsewhere(String pod, String egressIP) {
      Map<String, String> out = new TreeMap<>(snatted.getOrDefault(pod, Map.of()));
      out.values().removeIf(egressIP::equals);
      return out;
    }

    boolean applied(String node) {
      EgressNodeState st = observed.get(node);
      return st != null && st.getStatus() != null
          && Objects.equals(st.getStatus().appliedGeneration, st.getMetadata().getGeneration());
    }
  }

  private static List<String> union(List<String> a, Set<String> b) {
    Set<String> all = new HashSet<>(a);
    all.addAll(b);
    return sorted(all);
  }

  private static List<String> sorted(java.util.Collection<String> ips) {
    return ips.stream().sorted(IpAddresses.ORDER).toList();
  }
}
