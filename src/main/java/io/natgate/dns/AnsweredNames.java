package io.natgate.dns;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.LongSupplier;

/**
 * The allowed DNS name each address was last answered for, as this node's sets were given it, until those pairs
 * expire: what a denied record names (a pod that looked the name up and then tried another port, say). Bounded: when
 * full, expired names go (looked for at most once a second) and new ones wait until there is room.
 */
public final class AnsweredNames {
  static final int MAX = 65_536;

  private record Named(String fqdn, long untilNanos) {
  }

  private final Map<String, Named> byAddress = new ConcurrentHashMap<>();
  private final LongSupplier nanos;
  private volatile long nextPurgeNanos;

  public AnsweredNames() {
    this(System::nanoTime);
  }

  AnsweredNames(LongSupplier nanos) {
    this.nanos = nanos;
    this.nextPurgeNanos = nanos.getAsLong();
  }

  void answered(String fqdn, String address, long seconds) {
    long now = nanos.getAsLong();
    if (byAddress.size() >= MAX && now - nextPurgeNanos >= 0) {
      // at most once a second: with every name live, a scan per answer would cost the pair path a full pass
      nextPurgeNanos = now + 1_000_000_000L;
      byAddress.values().removeIf(n -> n.untilNanos() - now < 0);
    }
    if (byAddress.size() < MAX || byAddress.containsKey(address)) {
      byAddress.put(address, new Named(fqdn, now + seconds * 1_000_000_000L));
    }
  }

  /** The name {@code address} was answered for while its pairs last; null when none is known. */
  public String nameOf(String address) {
    Named n = byAddress.get(address);
    return n == null || n.untilNanos() - nanos.getAsLong() < 0 ? null : n.fqdn();
  }
}
