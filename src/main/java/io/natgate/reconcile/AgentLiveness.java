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
 * <p>
 * When no Lease at all changed for half the timeout while two or more agents were alive (each renews several times
 * per timeout, so changes keep coming while any of them lives), the operator's own view is
 * what stopped (the API server or its watch), not every agent at once: it keeps the last verdict, and when changes
 * come again it gives every agent that was alive {@link #RESUME_GRACE} from then, so that those whose first renewal
 * comes later (each agent reconnects on its own: 2.3 s after the first one on a loaded lab after an API server restart)
 * are not declared dead (and their groups and IPs not changed) meanwhile.
 */
final class AgentLiveness {
  /** A Lease whose renewTime is this old when first seen is dead, whatever the clocks' skew. */
  static final Duration LONG_PAST = Duration.ofMinutes(1);
  /**
   * After an outage of its own view, how long an agent alive before it has to renew again. An agent that died during
   * the outage is seen dead this much later (a peer group's standby has taken its IPs over already).
   */
  static final Duration RESUME_GRACE = Duration.ofSeconds(5);

  private final Duration timeout;
  /** By node, for the Leases of the last observation: the renewTime seen and when (null: it was long past). */
  private Map<String, Seen> seen = new HashMap<>();
  private Long lastChangeNanos;
  private Set<String> lastAlive = Set.of();
  private boolean stale;
  /** Agents alive when the view went stale, alive until {@link #graceUntilNanos} unless their Lease is long past. */
  private Set<String> graced = Set.of();
  private long graceUntilNanos;

  private record Seen(ZonedDateTime renewTime, Long atNanos) {
  }

  AgentLiveness(Duration timeout) {
    this.timeout = timeout;
  }

  /** @param leases every agent Lease now; {@code nowNanos} on System.nanoTime's scale */
  synchronized Set<String> observe(Collection<Lease> leases, long nowNanos, Instant wallNow) {
    Set<String> alive = new TreeSet<>();
    Map<String, Seen> current = new HashMap<>();
    boolean changed = false;
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
        changed = true;
      }
      current.put(node, now);
    }
    if (changed) {
      if (stale) {
        graced = lastAlive;
        graceUntilNanos = nowNanos + RESUME_GRACE.toNanos();
        stale = false;
      }
      lastChangeNanos = nowNanos;
    } else if (lastChangeNanos != null && nowNanos - lastChangeNanos >= timeout.toNanos() / 2
        && lastAlive.size() >= 2) {
      stale = true;
    }
    seen = current; // Leases gone are forgotten: back, they count as first seen
    if (stale) {
      return new TreeSet<>(lastAlive);
    }
    current.forEach((node, v) -> {
      boolean resuming = graced.contains(node) && nowNanos - graceUntilNanos < 0;
      if (v.atNanos() != null && (nowNanos - v.atNanos() < timeout.toNanos() || resuming)) {
        alive.add(node);
      }
    });
    lastAlive = Set.copyOf(alive);
    return alive;
  }
}
