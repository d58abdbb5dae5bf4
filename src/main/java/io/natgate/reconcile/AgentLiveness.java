package io.natgate.reconcile;

import io.fabric8.kubernetes.api.model.coordination.v1.Lease;
import io.natgate.plan.NodeReadiness;
import java.time.Duration;
import java.time.Instant;
import java.time.ZonedDateTime;
import java.util.Collection;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;

/**
 * Which agents are alive, judged by when this operator saw their Lease's renewTime change (its own monotonic clock),
 * not by comparing renewTime with its wall clock: a skewed clock can then neither move an IP before the agent has
 * fenced itself (the change is seen after the agent's renewal succeeded) nor keep a dead agent alive, and a busy
 * operator whose watch runs late but steady does not mistake that lag for dead agents. A Lease first seen is given
 * the timeout from then (as Kubernetes' node lifecycle controller does), unless its renewTime is long past.
 */
final class AgentLiveness {
  /** A Lease whose renewTime is this old when first seen is dead, whatever the clocks' skew. */
  static final Duration LONG_PAST = Duration.ofMinutes(1);

  private final Duration timeout;
  /** By node, for the Leases of the last observation: the renewTime seen and when (null: it was long past). */
  private Map<String, Seen> seen = new HashMap<>();

  private record Seen(ZonedDateTime renewTime, Long atNanos) {
  }

  AgentLiveness(Duration timeout) {
    this.timeout = timeout;
  }

  /** @param leases every agent Lease now; {@code nowNanos} on System.nanoTime's scale */
  synchronized Set<String> observe(Collection<Lease> leases, long nowNanos, Instant wallNow) {
    Set<String> alive = new TreeSet<>();
    Map<String, Seen> current = new HashMap<>();
    for (Lease lease : leases) {
      String node = lease.getMetadata().getLabels().get(NodeReadiness.NODE_LABEL);
      ZonedDateTime renewed = lease.getSpec() == null ? null : lease.getSpec().getRenewTime();
      if (node == null || renewed == null) {
        continue;
      }
      Seen before = seen.get(node);
      Seen now;
      if (before != null && Objects.equals(before.renewTime(), renewed)) {
        now = before;
      } else if (before == null && !NodeReadiness.agentAlive(lease, wallNow, LONG_PAST)) {
        now = new Seen(renewed, null);
      } else {
        now = new Seen(renewed, nowNanos);
      }
      current.put(node, now);
      if (now.atNanos() != null && nowNanos - now.atNanos() < timeout.toNanos()) {
        alive.add(node);
      }
    }
    seen = current; // Leases gone are forgotten: back, they count as first seen
    return alive;
  }
}
