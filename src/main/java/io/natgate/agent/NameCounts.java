package io.natgate.agent;

import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.api.v1alpha1.ResolvedName;
import io.natgate.dataplane.DestinationSets;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * What the names' sets on this node hold, counted every few seconds: the number of members of each and when it last
 * changed. A state's status carries them (so a status is written when a number changes, not per DNS answer). Not
 * thread-safe: the agent's counting task owns it and publishes copies.
 */
final class NameCounts {
  private record Count(int entries, String since) {
  }

  private final Map<String, Count> bySet = new HashMap<>();

  /** Takes a new count (set name to members); true when any number changed (or a set came or went). */
  boolean update(Map<String, Integer> counted, Instant now) {
    String at = now.truncatedTo(ChronoUnit.SECONDS).toString(); // one format: comparable as text
    boolean changed = bySet.keySet().retainAll(counted.keySet());
    for (var e : counted.entrySet()) {
      Count previous = bySet.get(e.getKey());
      if (previous == null || previous.entries() != e.getValue()) {
        bySet.put(e.getKey(), new Count(e.getValue(), at));
        changed = true;
      }
    }
    return changed;
  }

  /** The names of a state's allow list whose sets are counted here; null when none is. */
  List<ResolvedName> of(String gateway, NodeGatewayState state) {
    if (state == null || state.allow == null) {
      return null;
    }
    List<ResolvedName> names = state.allow.stream().map(e -> e.fqdn).filter(Objects::nonNull).distinct()
        .filter(fqdn -> bySet.containsKey(DestinationSets.fqdn(gateway, fqdn)))
        .map(fqdn -> {
          Count c = bySet.get(DestinationSets.fqdn(gateway, fqdn));
          return new ResolvedName(fqdn, c.entries(), c.since());
        }).toList();
    return names.isEmpty() ? null : names;
  }

  /** A copy to read on another thread. */
  NameCounts copy() {
    NameCounts c = new NameCounts();
    c.bySet.putAll(bySet);
    return c;
  }
}
