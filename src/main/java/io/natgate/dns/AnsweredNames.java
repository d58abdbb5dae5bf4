package io.natgate.dns;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.LongSupplier;

/**
 * The allowed DNS name each address was last answered for, as this node's sets were given it, until those pairs
 * expire: what a denied record names (a pod that looked the name up and then tried another port, say). Bounded: when
 * full, expired names go first and new ones wait until there is room.
 */
public final class AnsweredNames {
  static final int MAX = 65_536;

  private record Named(String fqdn, long untilNanos) {
  }

  private final Map<String, Named> byAddress = new ConcurrentHashMap<>();
  private final LongSupplier nanos;

  public AnsweredNames() {
    this(System::nanoTime);
  }

  AnsweredNames(LongSupplier nanos) {
    this.nanos = nanos;
  }

  void answered(String fqdn, String address, long seconds) {
    long now = nanos.getAsLong();
    if (byAddress.size() >= MAX) {
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
