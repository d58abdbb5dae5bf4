package io.natgate.plan;

import io.fabric8.kubernetes.api.model.Node;
import io.fabric8.kubernetes.api.model.Pod;
import io.natgate.api.v1alpha1.AllowEntry;
import io.natgate.api.v1alpha1.Assignment;
import io.natgate.api.v1alpha1.ConnectionLogState;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.EgressGatewaySpec;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import io.natgate.api.v1alpha1.NodeGatewayState;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Collectors;

/** Decides, as a pure function of what was observed, everything about one gateway. */
public final class GatewayPlanner {
  private GatewayPlanner() {
  }

  public static GatewayPlan plan(EgressGateway gateway, ClusterSnapshot cluster, Instant now) {
    return plan(gateway, cluster, Map.of(), now);
  }

  /**
   * @param takeovers egress IPs that agents report having taken over, by IP (see {@link PeerGroups#takeovers}):
   *                  adopted as if the last status had said so, never undone
   */
  public static GatewayPlan plan(EgressGateway gateway, ClusterSnapshot cluster, Map<String, String> takeovers,
      Instant now) {
    return plan(gateway, cluster, takeovers, Map.of(), now);
  }

  /**
   * @param observed the gateway's node states as observed, by node: planned moves away from a node that holds an IP
   *                 are make-before-break ({@link Handovers})
   */
  public static GatewayPlan plan(EgressGateway gateway, ClusterSnapshot cluster, Map<String, String> takeovers,
      Map<String, EgressNodeState> observed, Instant now) {
    EgressGatewaySpec spec = gateway.getSpec();
    List<String> candidates = cluster.nodes().values().stream()
        .filter(n -> n.getMetadata().getDeletionTimestamp() == null)
        .filter(n -> LabelSelectors.matches(spec.nodeSelector, n.getMetadata().getLabels()))
        .map(n -> n.getMetadata().getName()).sorted().toList();
    Map<String, String> unready = new TreeMap<>();
    candidates.forEach(n -> {
      String why = NodeReadiness.whyNotReady(cluster.nodes().get(n), cluster.liveAgents());
      if (why != null) {
        unready.put(n, why);
      }
    });
    Set<String> ready = candidates.stream().filter(n -> !unready.containsKey(n))
        .collect(Collectors.toCollection(TreeSet::new));
    // A cordoned node (kubectl cordon, and drain, which cordons first) hands its IPs over and takes none, as long
    // as another ready candidate is not cordoned: draining every egress node at once must not stop egress.
    Set<String> uncordoned = ready.stream().filter(n -> !cordoned(cluster.nodes().get(n)))
        .collect(Collectors.toCollection(TreeSet::new));
    Set<String> placeOn = uncordoned.isEmpty() ? ready : uncordoned;

    Map<String, String> conflicts = conflicts(gateway, cluster.liveGateways());
    List<Assignment> previous = gateway.getStatus() == null ? List.of() : gateway.getStatus().assignments;
    List<Assignment> assignments;
    List<String> sourceIPs;
    List<NodeGatewayState.Member> group = spec.egressIPs().isEmpty() || !cluster.peerGroups() ? List.of()
        : PeerGroups.members(gateway.getMetadata().getName(), candidates, cluster);
    boolean peerRule = group.size() >= PeerGroups.MIN_GROUP;
    if (spec.egressIPs().isEmpty()) {
      // No floating IP: one ready candidate SNATs to its own InternalIP. Firewalls must allow every candidate's.
      String previousNode = previous.isEmpty() ? null : previous.get(0).node;
      String node = IpAssignment.assign(List.of("node"), placeOn,
          previousNode == null ? Map.of() : Map.of("node", previousNode)).get("node");
      assignments = node == null ? List.of()
          : List.of(new Assignment(NodeReadiness.internalIP(cluster.nodes().get(node)), node,
              since(previous, null, node, now)));
      sourceIPs = candidates.stream().map(n -> NodeReadiness.internalIP(cluster.nodes().get(n)))
          .filter(Objects::nonNull).distinct().sorted(IpAddresses.ORDER).toList();
    } else {
      List<String> usable = usableEgressIPs(spec, conflicts);
      Map<String, String> previousByIP = new HashMap<>();
      previous.stream().filter(a -> a.egressIP != null && a.node != null).forEach(a -> previousByIP.put(a.egressIP, a.node));
      takeovers.forEach((ip, node) -> {
        if (candidates.contains(node)) {
          previousByIP.put(ip, node);
        }
      });
      // With peer liveness, a holder whose agent's Lease is stale keeps its IPs: either the API server is what
      // failed (its peers still hear it), or its peers move them and report it.
      Set<String> keptBy = !peerRule ? Set.of() : candidates.stream()
          .filter(n -> unready.containsKey(n) && PeerGroups.readyButForLease(cluster.nodes().get(n)))
          .filter(n -> uncordoned.isEmpty() || !cordoned(cluster.nodes().get(n)))
          .collect(Collectors.toSet());
      Map<String, String> placed = IpAssignment.assign(usable, placeOn, keptBy, previousByIP);
      assignments = placed.entrySet().stream()
          .map(e -> new Assignment(e.getKey(), e.getValue(), e.getValue() == null ? null
              : since(previous, e.getKey(), e.getValue(), now)))
          .toList();
      sourceIPs = usable.stream().sorted(IpAddresses.ORDER).toList();
    }

    List<Pod> selected = PodSelection.select(spec.sources, cluster.pods(), cluster.namespaceLabels());
    Map<String, EgressNodeStateSpec> nodeStates = nodeStates(gateway.getMetadata().getName(), spec, assignments,
        selected, cluster, observed);
    if (peerRule) {
      addPeers(nodeStates, gateway.getMetadata().getName(), spec, group, assignments, placeOn, cluster);
    }
    List<String> problems = new ArrayList<>(LabelSelectors.problems("spec.nodeSelector", spec.nodeSelector));
    problems.addAll(LabelSelectors.problems("spec.sources.namespaceSelector", spec.sources.namespaceSelector));
    problems.addAll(LabelSelectors.problems("spec.sources.podSelector", spec.sources.podSelector));
    Map<String, String> adopted = new TreeMap<>(takeovers);
    adopted.entrySet().removeIf(e -> assignments.stream().noneMatch(a -> e.getKey().equals(a.egressIP)
        && e.getValue().equals(a.node)));
    Map<String, EgressNodeStateSpec> toWrite = spec.egressIPs().isEmpty() ? nodeStates
        : Handovers.makeBeforeBreak(PodMoves.staged(nodeStates, observed, cluster.liveAgents(), podNodes(selected)),
            observed, cluster.liveAgents(), adopted);
    Set<String> avoided = new TreeSet<>(ready);
    avoided.removeAll(placeOn);
    Set<String> deleted = previous.stream().map(a -> a.node).filter(Objects::nonNull)
        .filter(n -> cluster.nodes().get(n) == null || cluster.nodes().get(n).getMetadata().getDeletionTimestamp()
            != null)
        .collect(Collectors.toCollection(TreeSet::new));
    return new GatewayPlan(candidates, ready, unready, assignments, sourceIPs, conflicts, toWrite, selected,
        problems, adopted, avoided, deleted);
  }

  /**
   * The egress IPs pods are spread over (by {@link IpAddresses#egressIPFor}), in spec order: those no older gateway
   * holds, whether or not a node holds them now. A gateway without egress IPs uses its assigned node's InternalIP.
   */
  public static List<String> usableEgressIPs(EgressGatewaySpec spec, Map<String, String> conflicts) {
    return spec.egressIPs().stream().filter(ip -> !conflicts.containsKey(ip)).toList();
  }

  /** Egress IPs of this gateway that an older live gateway also lists, with that gateway's name. */
  public static Map<String, String> conflicts(EgressGateway gateway, Collection<EgressGateway> liveGateways) {
    Map<String, String> conflicts = new TreeMap<>(IpAddresses.ORDER);
    for (EgressGateway other : liveGateways) {
      if (other.getMetadata().getName().equals(gateway.getMetadata().getName())
          || ClusterSnapshot.SENIORITY.compare(other, gateway) > 0) {
        continue;
      }
      other.getSpec().egressIPs().stream().filter(gateway.getSpec().egressIPs()::contains)
          .forEach(ip -> conflicts.putIfAbsent(ip, other.getMetadata().getName()));
    }
    return conflicts;
  }

  /** The node of each pod that has one, by pod IP. */
  static Map<String, String> podNodes(List<Pod> pods) {
    Map<String, String> nodes = new HashMap<>();
    pods.stream().filter(p -> p.getSpec() != null && p.getSpec().getNodeName() != null)
        .forEach(p -> nodes.put(p.getStatus().getPodIP(), p.getSpec().getNodeName()));
    return nodes;
  }

  /** Cordoned (spec.unschedulable): {@code kubectl cordon}, and the first step of {@code kubectl drain}. */
  public static boolean cordoned(Node node) {
    return node.getSpec() != null && Boolean.TRUE.equals(node.getSpec().getUnschedulable());
  }

  private static String since(List<Assignment> previous, String egressIP, String node, Instant now) {
    return previous.stream()
        .filter(a -> node.equals(a.node) && (egressIP == null || egressIP.equals(a.egressIP)) && a.since != null)
        .map(a -> a.since).findFirst().orElse(now.toString());
  }

  /**
   * Each assigned node SNATs the pods mapped to its IP; every other node with selected pods steers them to the
   * holder, or, with no holder, applies the failure policy (a steer entry without gatewayNode).
   */
  static Map<String, EgressNodeStateSpec> nodeStates(String gateway, EgressGatewaySpec spec,
      List<Assignment> assignments, List<Pod> selected, ClusterSnapshot cluster, Map<String, EgressNodeState> observed) {
    List<String> egressIPs = Handovers.mappable(
        assignments.stream().map(a -> a.egressIP).filter(Objects::nonNull).toList(), observed);
    Map<String, Assignment> byIP = new LinkedHashMap<>();
    assignments.stream().filter(a -> a.egressIP != null).forEach(a -> byIP.put(a.egressIP, a));
    boolean holdAddress = !spec.egressIPs().isEmpty();

    Map<String, List<String>> sourcesByIP = new TreeMap<>();
    Map<String, String> podNames = new HashMap<>(); // pod IP -> namespace/name, for the connection log
    // node -> egress IP ("" when there is none) -> local pod IPs to steer
    Map<String, Map<String, List<String>>> steering = new TreeMap<>();
    for (Pod pod : selected) {
      String podIP = pod.getStatus().getPodIP();
      String egressIP = IpAddresses.egressIPFor(podIP, egressIPs);
      Assignment holder = egressIP == null ? null : byIP.get(egressIP);
      if (egressIP != null) {
        sourcesByIP.computeIfAbsent(egressIP, k -> new ArrayList<>()).add(podIP);
        podNames.put(podIP, pod.getMetadata().getNamespace() + "/" + pod.getMetadata().getName());
      }
      String podNode = pod.getSpec() == null ? null : pod.getSpec().getNodeName();
      if (podNode != null && (holder == null || !podNode.equals(holder.node))) {
        steering.computeIfAbsent(podNode, k -> new TreeMap<>())
            .computeIfAbsent(egressIP == null ? "" : egressIP, k -> new ArrayList<>()).add(podIP);
      }
    }

    List<String> excluded = excludedCidrs(spec, cluster);
    Map<String, EgressNodeStateSpec> states = new TreeMap<>();
    for (Assignment a : assignments) {
      if (a.node != null) {
        List<String> sources = sorted(sourcesByIP.getOrDefault(a.egressIP, List.of()));
        EgressNodeStateSpec state = entry(states, a.node, gateway, spec, excluded);
        state.snat.add(new NodeGatewayState.Snat(a.egressIP, holdAddress, sources));
        // Only with pods to name: server-side apply turns an empty object over a filled one into null.
        if (spec.connectionLog().enabled() && !sources.isEmpty()) {
          if (state.connectionLog == null) {
            state.connectionLog = new ConnectionLogState();
          }
          sources.forEach(ip -> state.connectionLog.pods.put(ip, podNames.get(ip)));
        }
      }
    }
    steering.forEach((node, byEgressIP) -> byEgressIP.forEach((egressIP, podIPs) -> {
      Assignment holder = byIP.get(egressIP);
      String gatewayNode = holder == null ? null : holder.node;
      String gatewayNodeIP = gatewayNode == null ? null : NodeReadiness.internalIP(cluster.nodes().get(gatewayNode));
      entry(states, node, gateway, spec, excluded).steer.add(new NodeGatewayState.Steer(
          egressIP.isEmpty() ? null : egressIP, gatewayNode, gatewayNodeIP, sorted(podIPs)));
    }));
    return states;
  }

  /**
   * Gives every member of the group its section: the group, each IP's holder and standbys, and on a standby the SNAT
   * it keeps ready (the holder's sources), so that taking an IP over is adding its address.
   */
  static void addPeers(Map<String, EgressNodeStateSpec> states, String gateway, EgressGatewaySpec spec,
      List<NodeGatewayState.Member> group, List<Assignment> assignments, Set<String> ready, ClusterSnapshot cluster) {
    List<String> excluded = excludedCidrs(spec, cluster);
    List<NodeGatewayState.Succession> successions = new ArrayList<>();
    Map<String, List<NodeGatewayState.Snat>> standby = new TreeMap<>();
    for (Assignment a : assignments) {
      if (a.node == null) {
        continue;
      }
      List<String> standbys = PeerGroups.standbys(a.node, ready, assignments);
      successions.add(new NodeGatewayState.Succession(a.egressIP, a.node, standbys));
      List<String> sources = states.get(a.node).snat.stream().filter(s -> a.egressIP.equals(s.egressIP))
          .findFirst().map(s -> s.sources).orElse(List.of());
      standbys.forEach(n -> standby.computeIfAbsent(n, k -> new ArrayList<>())
          .add(new NodeGatewayState.Snat(a.egressIP, true, sources)));
    }
    for (NodeGatewayState.Member m : group) {
      var peers = new NodeGatewayState.Peers();
      peers.members = group;
      peers.successions = successions;
      peers.standby = standby.getOrDefault(m.name, List.of());
      entry(states, m.name, gateway, spec, excluded).peers = peers;
    }
  }

  private static EgressNodeStateSpec entry(Map<String, EgressNodeStateSpec> states, String node, String gateway,
      EgressGatewaySpec spec, List<String> excluded) {
    return states.computeIfAbsent(node, n -> {
      EgressNodeStateSpec s = new EgressNodeStateSpec();
      s.nodeName = node;
      s.gateway = gateway;
      s.failurePolicy = spec.failurePolicy();
      s.cidrs = List.copyOf(spec.destinations().cidrs());
      s.excludedCidrs = excluded;
      // Every role needs it: the gateway (and its standbys) enforce it, directors' DNS path follows its names.
      s.allow = allowList(spec);
      return s;
    });
  }

  /** The spec's allow list as node states carry it: null when the gateway has none (every destination allowed). */
  public static List<AllowEntry> allowList(EgressGatewaySpec spec) {
    List<AllowEntry> allow = spec.destinations().allow;
    return allow == null ? null : List.copyOf(allow);
  }

  /** The spec's exclusions plus the cluster's own networks, deduplicated and sorted. */
  public static List<String> excludedCidrs(EgressGatewaySpec spec, ClusterSnapshot cluster) {
    Set<String> all = new TreeSet<>(spec.destinations().excludedCidrs());
    all.addAll(cluster.clusterCidrs());
    for (Node node : cluster.nodes().values()) {
      if (node.getSpec() != null && node.getSpec().getPodCIDRs() != null) {
        node.getSpec().getPodCIDRs().stream().filter(c -> c.indexOf(':') < 0).forEach(all::add);
      }
    }
    return List.copyOf(all);
  }

  private static List<String> sorted(List<String> ips) {
    return ips.stream().sorted(IpAddresses.ORDER).toList();
  }
}
