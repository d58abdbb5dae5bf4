package io.natgate.plan;

import io.fabric8.kubernetes.api.model.Condition;
import io.natgate.api.v1alpha1.Assignment;
import io.natgate.api.v1alpha1.EgressGatewayStatus;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** The Kubernetes Events a status change deserves: assignment changes and newly seen conflicts. */
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
    return events;
  }

  private static String whyLeft(String node, GatewayPlan plan) {
    if (!plan.candidates().contains(node)) {
      return node + " no longer matches nodeSelector";
    }
    if (plan.cordoned().contains(node)) {
      return node + " is cordoned (kubectl cordon or drain)";
    }
    return plan.readyNodes().contains(node) ? "rebalanced"
        : node + " is not ready: " + plan.unready().getOrDefault(node, "unknown");
  }

  private static Map<String, String> byIP(List<Assignment> assignments) {
    Map<String, String> m = new HashMap<>();
    assignments.stream().filter(a -> a.egressIP != null && a.node != null).forEach(a -> m.put(a.egressIP, a.node));
    return m;
  }

  private static String readyReason(EgressGatewayStatus status) {
    if (status == null) {
      return null;
    }
    return status.conditions.stream().filter(c -> StatusCalculator.READY.equals(c.getType()))
        .map(Condition::getReason).findFirst().orElse(null);
  }
}
