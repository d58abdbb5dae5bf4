package io.natgate.cni;

import io.natgate.api.v1alpha1.Assignment;
import io.natgate.api.v1alpha1.ConnectionLogState;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.FailurePolicy;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.plan.ClusterSnapshot;
import io.natgate.plan.GatewayPlanner;
import io.natgate.plan.IpAddresses;
import io.natgate.plan.PodSelection;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * What a node's agent decides itself about its own pods, ahead of the operator (pure): which gateways select a pod
 * and which egress IP it leaves with, by the operator's own functions ({@link PodSelection#selects},
 * {@link IpAddresses#egressIPFor}) over the agent's view of the gateways. The operator's node states stay the
 * authority: a pod they mention is left as they say; one they do not mention yet is added where the operator will
 * put it, so that its confirmation later changes nothing in the kernel.
 */
public final class LocalDecisions {
  private LocalDecisions() {
  }

  /** A pod on this node with its address (from the CNI ADD, or its status). */
  public record LocalPod(String namespace, String name, String ip, Map<String, String> labels) {
  }

  /** A gateway that selects a pod, and the egress IP the pod's traffic leaves with (null: none now). */
  public record Selection(String gateway, String egressIP) {
  }

  /** The live gateways that select the pod, by gateway name. */
  public static List<Selection> selections(LocalPod pod, Collection<EgressGateway> gateways,
      Map<String, Map<String, String>> namespaceLabels) {
    List<EgressGateway> live = live(gateways);
    List<Selection> selections = new ArrayList<>();
    for (EgressGateway g : live) {
      if (PodSelection.selects(g.getSpec().sources, pod.namespace(), pod.labels(), namespaceLabels)) {
        selections.add(new Selection(g.getMetadata().getName(), IpAddresses.egressIPFor(pod.ip(), egressIPs(g, live))));
      }
    }
    return selections;
  }

  /**
   * The operator's states for this node plus the selected local pods they do not mention yet: in the SNAT set of
   * their egress IP when this node holds it (assigned, or taken over as a standby), else steered to its holder, else (no holder, failurePolicy Drop) in
   * the drop set. A gateway with no state here gets one from its spec, excluding {@code clusterCidrs}.
   *
   * @param states the operator's states for this node, by gateway (not modified)
   */
  public static Map<String, NodeGatewayState> merge(String node, Map<String, ? extends NodeGatewayState> states,
      Collection<LocalPod> pods, Collection<EgressGateway> gateways, Map<String, Map<String, String>> namespaceLabels,
      List<String> clusterCidrs) {
    Map<String, NodeGatewayState> merged = new TreeMap<>();
    states.forEach((gateway, state) -> merged.put(gateway, copy(state)));
    Map<String, Set<String>> mentioned = new TreeMap<>();
    List<EgressGateway> live = live(gateways);
    for (EgressGateway g : live) {
      String name = g.getMetadata().getName();
      for (LocalPod pod : pods) {
        if (!PodSelection.selects(g.getSpec().sources, pod.namespace(), pod.labels(), namespaceLabels)) {
          continue;
        }
        if (mentioned.computeIfAbsent(name, k -> mentions(merged.get(k))).contains(pod.ip())) {
          continue; // the operator's state decides for this pod
        }
        NodeGatewayState state = merged.computeIfAbsent(name, k -> fresh(g, live, clusterCidrs));
        add(node, state, g, IpAddresses.egressIPFor(pod.ip(), egressIPs(g, live)), pod);
      }
    }
    return merged;
  }

  /**
   * The pods {@code merged} steers to a node holding their egress IP that the operator's {@code states} do not steer
   * yet (added by this node, at ADD or on a label change): that node learns of them only from this one.
   */
  public static Set<EarlySources.Source> steeredAhead(Map<String, ? extends NodeGatewayState> states,
      Map<String, ? extends NodeGatewayState> merged) {
    Set<EarlySources.Source> ahead = new HashSet<>();
    merged.forEach((gateway, part) -> {
      Set<String> operators = new HashSet<>();
      if (states.get(gateway) != null) {
        states.get(gateway).steer.forEach(st -> operators.addAll(st.sources));
      }
      part.steer.stream().filter(st -> st.gatewayNode != null && st.egressIP != null)
          .forEach(st -> st.sources.stream().filter(pod -> !operators.contains(pod))
              .forEach(pod -> ahead.add(new EarlySources.Source(gateway, st.egressIP, pod))));
    });
    return ahead;
  }

  /**
   * Of the sources this node {@code told} gateway nodes about, those {@code merged} steers nowhere any more (the pod
   * unselected or gone): the gateway and its standbys must forget them now. Kept until they expire, a standby would
   * SNAT this node's own pod, no longer steered, to an egress IP it does not hold (the pod cut off for the expiry).
   * Sources the operator now steers stay: its states keep them on the gateway.
   */
  public static Set<EarlySources.Source> withdrawn(Set<EarlySources.Source> told,
      Map<String, ? extends NodeGatewayState> merged) {
    Set<EarlySources.Source> steered = steeredAhead(Map.of(), merged);
    Set<EarlySources.Source> gone = new HashSet<>(told);
    gone.removeAll(steered);
    return gone;
  }

  private static void add(String node, NodeGatewayState state, EgressGateway g, String egressIP, LocalPod pod) {
    String podIP = pod.ip();
    String holder = holder(g, egressIP);
    if (node.equals(holder) || tookOver(state, egressIP)) {
      for (NodeGatewayState.Snat snat : state.snat) {
        if (snat.egressIP.equals(egressIP)) {
          snat.sources.add(podIP);
          if (g.getSpec().connectionLog().enabled()) { // named in the log as the operator's state will name it
            if (state.connectionLog == null) {
              state.connectionLog = new ConnectionLogState();
            }
            state.connectionLog.pods.put(podIP, pod.namespace() + "/" + pod.name());
          }
          return;
        }
      }
      holder = null; // the status says here, the state not yet: this node cannot SNAT it, so treat it as unheld
    }
    if (holder == null && state.failurePolicy == FailurePolicy.Allow) {
      return; // falls back to the node's masquerade, as the operator's state will say
    }
    for (NodeGatewayState.Steer steer : state.steer) {
      if (java.util.Objects.equals(steer.egressIP, egressIP)) {
        steer.sources.add(podIP);
        return;
      }
    }
    state.steer.add(new NodeGatewayState.Steer(egressIP, holder, null, new ArrayList<>(List.of(podIP))));
  }

  /**
   * Whether this node holds {@code egressIP} as a standby that took it over (the part as rendered by
   * {@code HoldDecision.withHolding}: its standby SNAT, with the address): the status still names the old holder
   * until the operator adopts this node, but a pod steered there would be tunnelled to this node's own address.
   */
  private static boolean tookOver(NodeGatewayState state, String egressIP) {
    return egressIP != null && state.peers != null
        && state.peers.standby.stream().anyMatch(s -> egressIP.equals(s.egressIP))
        && state.snat.stream().anyMatch(s -> egressIP.equals(s.egressIP) && s.holdAddress);
  }

  /**
   * The egress IPs the operator spreads the gateway's pods over: the usable ones of its spec, or, for a gateway
   * using its node's own address, the one its status names.
   */
  static List<String> egressIPs(EgressGateway g, List<EgressGateway> live) {
    if (g.getSpec().egressIPs().isEmpty()) {
      return assignments(g).stream().filter(a -> a.node != null && a.egressIP != null).map(a -> a.egressIP).toList();
    }
    return GatewayPlanner.usableEgressIPs(g.getSpec(), GatewayPlanner.conflicts(g, live));
  }

  private static String holder(EgressGateway g, String egressIP) {
    return egressIP == null ? null : assignments(g).stream().filter(a -> egressIP.equals(a.egressIP))
        .map(a -> a.node).findFirst().orElse(null);
  }

  private static List<Assignment> assignments(EgressGateway g) {
    return g.getStatus() == null || g.getStatus().assignments == null ? List.of() : g.getStatus().assignments;
  }

  private static List<EgressGateway> live(Collection<EgressGateway> gateways) {
    return new ClusterSnapshot(Map.of(), List.of(), Map.of(), gateways, List.of(), Set.of()).liveGateways();
  }

  private static NodeGatewayState fresh(EgressGateway g, List<EgressGateway> live, List<String> clusterCidrs) {
    var state = new NodeGatewayState();
    state.failurePolicy = g.getSpec().failurePolicy();
    state.cidrs = List.copyOf(g.getSpec().destinations().cidrs());
    state.excludedCidrs = GatewayPlanner.excludedCidrs(g.getSpec(),
        new ClusterSnapshot(Map.of(), List.of(), Map.of(), live, clusterCidrs, Set.of()));
    state.allow = GatewayPlanner.allowList(g.getSpec());
    return state;
  }

  private static Set<String> mentions(NodeGatewayState state) {
    Set<String> ips = new HashSet<>();
    if (state != null) {
      state.snat.forEach(s -> ips.addAll(s.sources));
      state.steer.forEach(s -> ips.addAll(s.sources));
    }
    return ips;
  }

  /** The operator's part with what this class adds to (the SNAT and steer sources, the log's pods) copied deep. */
  private static NodeGatewayState copy(NodeGatewayState s) {
    var c = new NodeGatewayState(s);
    c.snat = new ArrayList<>();
    c.steer = new ArrayList<>();
    s.snat.forEach(x -> c.snat.add(new NodeGatewayState.Snat(x.egressIP, x.holdAddress, new ArrayList<>(x.sources))));
    s.steer.forEach(x -> c.steer.add(new NodeGatewayState.Steer(x.egressIP, x.gatewayNode, x.gatewayNodeIP,
        new ArrayList<>(x.sources))));
    c.connectionLog = s.connectionLog == null ? null : new ConnectionLogState(new TreeMap<>(s.connectionLog.pods));
    return c;
  }
}
