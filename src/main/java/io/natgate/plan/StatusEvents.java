package io.natgate.plan;

import io.fabric8.kubernetes.api.model.Condition;
import io.natgate.api.v1alpha1.Assignment;
import io.natgate.api.v1alpha1.EgressGatewayStatus;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The Kubernetes Events a status change deserves: assignment changes, newly seen conflicts, SNAT port pressure
 * raised and cleared.
 */
public final class StatusEvents {
  public record Event(boolean warning, String reason, String message) {
  }

  private StatusEvents() {
  }

  public static List<Event> between(EgressGatewayStatus before, EgressGatewayStatus after, GatewayPlan plan) {
    List<Event> events = new ArrayList<>();
    Map<String, String> was = byIP(before == null ? List.of() : before.assignments);
    Map<String, String> now = byIP(after.assignments);
    now.forEach((ip, node) -> {
      String old = was.get(ip);
      if (old == null) {
        events.add(new Event(false, "EgressIPAssigned", ip + " assigned to node " + node));
      } else if (!old.equals(node)) {
        events.add(new Event(true, "EgressIPMoved", ip + " moved from node " + old + " to node " + node + ": "
            + (node.equals(plan.takenOver().get(ip)) ? "its peers stopped hearing " + old + " and " + node
                + " took the IP over" : whyLeft(old, plan))));
      }
    });
    was.forEach((ip, old) -> {
      if (!now.containsKey(ip) && !plan.conflicts().containsKey(ip) && plan.sourceIPs().contains(ip)) {
        events.add(new Event(true, "EgressIPUnassigned", ip + " left node " + old + " (" + whyLeft(old, plan)
            + ") and no other candidate node is ready"));
      }
    });
    if (!plan.conflicts().isEmpty() && !"EgressIPConflict".equals(readyReason(before))) {
      plan.conflicts().forEach((ip, older) -> events.add(new Event(true, "EgressIPConflict",
          ip + " is already claimed by the older EgressGateway " + older + "; this gateway will not use it")));
    }
    Condition portsBefore = condition(before, StatusCalculator.SNAT_PORT_PRESSURE);
    Condition portsAfter = condition(after, StatusCalculator.SNAT_PORT_PRESSURE);
    boolean wasShort = portsBefore != null && "True".equals(portsBefore.getStatus());
    if (portsAfter != null && "True".equals(portsAfter.getStatus()) && !wasShort) {
      events.add(new Event(true, "SNATPortPressure", portsAfter.getMessage()));
    } else if (wasShort && portsAfter != null && "False".equals(portsAfter.getStatus())) {
      events.add(new Event(false, "SNATPortPressureCleared", portsAfter.getMessage()));
    }
    return events;
  }

  private static Condition condition(EgressGatewayStatus status, String type) {
    if (status == null || status.conditions == null) {
      return null;
    }
    return status.conditions.stream().filter(c -> type.equals(c.getType())).findFirst().orElse(null);
  }

  private static String whyLeft(String node, GatewayPlan plan) {
    if (plan.deleted().contains(node)) {
      return node + " was deleted";
    }
    if (!plan.candidates().contains(node)) {
      return node + " no longer matches nodeSelector";
    }
    if (plan.cordoned().contains(node)) {
      return node + " is cordoned (kubectl cordon or drain)";
    }
    return plan.readyNodes().contains(node) ? "rebalanced"
        : node + " is not ready: " + plan.unready().getOrDefault(node, "unknown");
  }

  /** Egress IP → node of the assignments that have a node ({@code null}: none). */
  public static Map<String, String> byIP(List<Assignment> assignments) {
    Map<String, String> m = new HashMap<>();
    if (assignments == null) {
      return m;
    }
    assignments.stream().filter(a -> a.egressIP != null && a.node != null).forEach(a -> m.put(a.egressIP, a.node));
    return m;
  }

  private static String readyReason(EgressGatewayStatus status) {
    Condition ready = condition(status, StatusCalculator.READY);
    return ready == null ? null : ready.getReason();
  }
}
