package io.natgate.plan;

import io.fabric8.kubernetes.api.model.Condition;
import io.fabric8.kubernetes.api.model.ConditionBuilder;
import io.natgate.api.v1alpha1.AllowEntry;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.EgressGatewayStatus;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.NodeStatus;
import io.natgate.api.v1alpha1.ResolvedName;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/** Status as a pure function of the plan and the agents' reports. */
public final class StatusCalculator {
  public static final String READY = "Ready";
  public static final String PROGRAMMED = "Programmed";
  public static final String DEGRADED = "Degraded";
  /** True while some egress IP uses more than 80 % of its SNAT source ports towards one destination. */
  public static final String SNAT_PORT_PRESSURE = "SNATPortPressure";

  private StatusCalculator() {
  }

  /** @param nodeStates this gateway's observed EgressNodeStates, by node name */
  public static EgressGatewayStatus compute(EgressGateway gateway, GatewayPlan plan,
      Map<String, EgressNodeState> nodeStates, Instant now) {
    EgressGatewayStatus status = new EgressGatewayStatus();
    List<String> draining = draining(plan, nodeStates, gateway.getStatus());
    status.sourceIPs = Stream.concat(plan.sourceIPs().stream(), draining.stream())
        .sorted(IpAddresses.ORDER).toList();
    status.drainingSourceIPs = draining;
    status.assignments = plan.assignments().stream().filter(a -> a.node != null).toList();
    status.selectedPods = plan.selectedPods().size();
    status.observedGeneration = gateway.getMetadata().getGeneration();
    status.resolvedNames = resolvedNames(gateway, nodeStates);

    List<String> pending = new ArrayList<>();
    Map<String, String> failed = new java.util.LinkedHashMap<>(); // node -> the agent's error
    List<String> involved = new ArrayList<>(plan.nodeStates().keySet());
    plan.candidates().stream().filter(n -> !involved.contains(n)).forEach(involved::add);
    for (String node : involved) {
      var state = ProgrammedState.of(plan.nodeStates().get(node), nodeStates.get(node));
      if (state == ProgrammedState.PENDING) {
        pending.add(node);
      } else if (state == ProgrammedState.FAILED) {
        failed.put(node, nodeStates.get(node).getStatus().error);
      }
    }
    status.nodes = plan.candidates().stream()
        .map(n -> new NodeStatus(n, plan.readyNodes().contains(n),
            !pending.contains(n) && !failed.containsKey(n)))
        .toList();

    List<Condition> previous = gateway.getStatus() == null ? List.of() : gateway.getStatus().conditions;
    long generation = Objects.requireNonNullElse(gateway.getMetadata().getGeneration(), 0L);
    status.conditions = List.of(
        condition(READY, ready(plan), previous, generation, now),
        condition(PROGRAMMED, programmed(plan, pending, failed), previous, generation, now),
        condition(DEGRADED, degraded(plan), previous, generation, now),
        condition(SNAT_PORT_PRESSURE, snatPortPressure(plan, nodeStates), previous, generation, now));
    return status;
  }

  /**
   * The source IPs the plan no longer uses that a node may still SNAT with, sorted: firewalls allowlist what the status
   * lists, so an IP stays listed while a node state SNATs to it, as observed (its agent may be applying it) or as about
   * to be written (a pod move held back), or its agent last reported holding it. While a node state is not applied
   * (or failed), its agent may still run an older spec: what the status listed before stays listed. So a node whose
   * agent stopped applying keeps them listed until its node state is gone.
   *
   * @param nodeStates this gateway's observed EgressNodeStates, by node name
   */
  static List<String> draining(GatewayPlan plan, Map<String, EgressNodeState> nodeStates,
      EgressGatewayStatus previous) {
    Set<String> used = new HashSet<>();
    plan.nodeStates().values().forEach(spec -> spec.snat.forEach(s -> used.add(s.egressIP)));
    nodeStates.values().forEach(st -> {
      if (st.getSpec() != null) {
        st.getSpec().snat.forEach(s -> used.add(s.egressIP));
      }
      if (st.getStatus() != null && st.getStatus().held != null) {
        used.addAll(st.getStatus().held);
      }
    });
    boolean unapplied = nodeStates.values().stream()
        .anyMatch(st -> ProgrammedState.of(st.getSpec(), st) != ProgrammedState.PROGRAMMED);
    if (unapplied && previous != null && previous.sourceIPs != null) {
      used.addAll(previous.sourceIPs);
    }
    used.removeAll(plan.sourceIPs());
    used.remove(null);
    return used.stream().sorted(IpAddresses.ORDER).toList();
  }

  /**
   * Each DNS name of the allow list, in its order, with the largest count a gateway node reports (the holder and its
   * standbys each keep the sets) and the latest time one changed; empty without such names.
   */
  static List<ResolvedName> resolvedNames(EgressGateway gateway, Map<String, EgressNodeState> nodeStates) {
    List<AllowEntry> allow = gateway.getSpec().destinations().allow;
    if (allow == null || allow.stream().noneMatch(e -> e.fqdn != null)) {
      return List.of();
    }
    List<ResolvedName> reported = nodeStates.values().stream()
        .filter(st -> st.getStatus() != null && st.getStatus().resolvedNames != null)
        .flatMap(st -> st.getStatus().resolvedNames.stream()).toList();
    return allow.stream().map(e -> e.fqdn).filter(Objects::nonNull).distinct().map(fqdn -> {
      List<ResolvedName> counts = reported.stream().filter(r -> fqdn.equals(r.fqdn)).toList();
      int entries = counts.stream().mapToInt(r -> r.entries).max().orElse(0);
      String learned = counts.stream().map(r -> r.learned).filter(Objects::nonNull).max(String::compareTo)
          .orElse(null);
      return new ResolvedName(fqdn, entries, learned);
    }).toList();
  }

  /**
   * The last status with {@code Ready=False} for a reconcile that failed (a write refused: {@code Forbidden} for a
   * missing permission, {@code Invalid} for a rejected object), so that it shows on the gateway, not only in the log.
   * Everything else stays as last written: it still describes the data plane.
   */
  public static EgressGatewayStatus failed(EgressGatewayStatus last, long generation, String reason, String message,
      Instant now) {
    EgressGatewayStatus status = new EgressGatewayStatus();
    List<Condition> previous = List.of();
    if (last != null) {
      status.sourceIPs = last.sourceIPs;
      status.drainingSourceIPs = last.drainingSourceIPs;
      status.assignments = last.assignments;
      status.nodes = last.nodes;
      status.selectedPods = last.selectedPods;
      status.observedGeneration = last.observedGeneration;
      status.resolvedNames = last.resolvedNames;
      previous = last.conditions;
    }
    List<Condition> conditions = new ArrayList<>();
    conditions.add(condition(READY, new Verdict(false, reason, message), previous, generation, now));
    previous.stream().filter(c -> !READY.equals(c.getType())).forEach(conditions::add);
    status.conditions = conditions;
    return status;
  }

  record Verdict(boolean status, String reason, String message) {
  }

  static Verdict ready(GatewayPlan plan) {
    if (!plan.problems().isEmpty()) {
      return new Verdict(false, "InvalidSelector", String.join("; ", plan.problems()));
    }
    if (plan.candidates().isEmpty()) {
      return new Verdict(false, "NoMatchingNodes", "no node matches spec.nodeSelector");
    }
    if (plan.readyNodes().isEmpty()) {
      return new Verdict(false, "NoReadyNode", "none of the candidate nodes is ready: " + String.join(", ", plan.candidates()));
    }
    if (!plan.conflicts().isEmpty()) {
      return new Verdict(false, "EgressIPConflict", conflictMessage(plan));
    }
    return new Verdict(true, "Ready", plan.assignments().stream().map(a -> a.egressIP + " on " + a.node)
        .collect(Collectors.joining(", ")));
  }

  /** @param failed the agent's error by node */
  static Verdict programmed(GatewayPlan plan, List<String> pending, Map<String, String> failed) {
    if (!failed.isEmpty()) {
      return new Verdict(false, "ApplyFailed", "agent failed on " + failed.entrySet().stream()
          .map(f -> f.getKey() + ": " + f.getValue()).collect(Collectors.joining("; ")));
    }
    if (!pending.isEmpty()) {
      return new Verdict(false, "NotProgrammed", "waiting for the agents on " + String.join(", ", pending));
    }
    return new Verdict(true, "Programmed", "agents applied the desired state on " + plan.nodeStates().size() + " node(s)");
  }

  static Verdict degraded(GatewayPlan plan) {
    Verdict ready = ready(plan);
    if (!ready.status()) {
      return new Verdict(true, ready.reason(), ready.message());
    }
    if (!plan.unready().isEmpty()) {
      return new Verdict(true, "NodesNotReady", "candidate nodes not ready: " + plan.unready().entrySet().stream()
          .map(e -> e.getKey() + " (" + e.getValue() + ")").collect(java.util.stream.Collectors.joining(", ")));
    }
    return new Verdict(false, "AsExpected", "all candidate nodes ready, all egress IPs held");
  }

  /**
   * From the gateway nodes' reports (their agents raise a destination above 80 % and clear it at 70 %, in steps of
   * 5 %): a status that changes with the reports, not with every connection.
   */
  static Verdict snatPortPressure(GatewayPlan plan, Map<String, EgressNodeState> nodeStates) {
    List<String> short_ = new ArrayList<>();
    nodeStates.entrySet().stream().sorted(Map.Entry.comparingByKey())
        .filter(e -> plan.nodeStates().containsKey(e.getKey()))
        .filter(e -> e.getValue().getStatus() != null && e.getValue().getStatus().snatPortUse != null)
        .forEach(e -> e.getValue().getStatus().snatPortUse.forEach(u -> short_.add(u + " on " + e.getKey())));
    if (short_.isEmpty()) {
      return new Verdict(false, "PortsAvailable", "no destination uses more than 80 % of an egress IP's SNAT ports");
    }
    return new Verdict(true, "PortsNearlyExhausted", "SNAT source ports nearly exhausted (new connections fail when "
        + "none is left): " + String.join("; ", short_));
  }

  private static String conflictMessage(GatewayPlan plan) {
    return plan.conflicts().entrySet().stream()
        .map(e -> e.getKey() + " is already claimed by the older EgressGateway " + e.getValue())
        .collect(Collectors.joining("; "));
  }

  /** Keeps lastTransitionTime when the status of a condition did not change. */
  private static Condition condition(String type, Verdict v, List<Condition> previous, long generation, Instant now) {
    String status = v.status() ? "True" : "False";
    String since = previous.stream().filter(c -> type.equals(c.getType()) && status.equals(c.getStatus()))
        .map(Condition::getLastTransitionTime).filter(Objects::nonNull).findFirst().orElse(now.toString());
    return new ConditionBuilder().withType(type).withStatus(status).withReason(v.reason()).withMessage(v.message())
        .withObservedGeneration(generation).withLastTransitionTime(since).build();
  }
}
