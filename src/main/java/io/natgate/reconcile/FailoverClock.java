package io.natgate.reconcile;

import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import java.util.function.BiPredicate;
import java.util.function.Predicate;

/**
 * Times failovers as the operator sees them: from the moment its holder was judged dead (its agent's Lease expired,
 * as the operator's heartbeat monitor saw it; or the move itself, when a standby took over before that) to the
 * moment the new holder's agent reported that it applied the move. One gateway's; not thread-safe (reconciles of a
 * gateway do not overlap).
 */
final class FailoverClock {
  private record Pending(String node, Instant since) {
  }

  private final Map<String, Pending> pending = new HashMap<>(); // by egress IP

  /**
   * @param before    egress IP → node as last reported in the gateway's status
   * @param after     egress IP → node as planned now
   * @param failedOver whether an IP (first argument) left its node (second) because it failed, not by a planned move
   * @param deadSince when the operator judged a node's agent dead, or null
   * @param applied   whether a node's agent reported the gateway's current state for it applied
   * @return the failovers completed now, by egress IP
   */
  Map<String, Duration> observe(Map<String, String> before, Map<String, String> after,
      BiPredicate<String, String> failedOver, Function<String, Instant> deadSince, Predicate<String> applied, Instant now) {
    after.forEach((ip, node) -> {
      String old = before.get(ip);
      if (old != null && !old.equals(node) && failedOver.test(ip, old)) {
        Instant dead = deadSince.apply(old);
        pending.put(ip, new Pending(node, dead != null && dead.isBefore(now) ? dead : now));
      }
    });
    pending.entrySet().removeIf(e -> !e.getValue().node().equals(after.get(e.getKey()))); // moved on, or gone
    Map<String, Duration> done = new HashMap<>();
    for (var e : Set.copyOf(pending.entrySet())) {
      if (applied.test(e.getValue().node())) {
        done.put(e.getKey(), Duration.between(e.getValue().since(), now));
        pending.remove(e.getKey());
      }
    }
    return done;
  }
}
