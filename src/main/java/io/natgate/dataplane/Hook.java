package io.natgate.dataplane;

/** natgate's own iptables chains and the built-in chain each is jumped to from, as that chain's first rule. */
public enum Hook {
  /** DNS path: send the DNS queries of pods whose gateway allows names to the node's DNS proxy (io.natgate.dns). */
  NAT_PREROUTING("nat", "PREROUTING"),
  /** Director: mark selected traffic for the tunnel. */
  MANGLE_PREROUTING("mangle", "PREROUTING"),
  /** Director: clamp TCP MSS to the tunnel's smaller MTU, so no connection depends on ICMP getting through. */
  MANGLE_FORWARD("mangle", "FORWARD"),
  /** Director: keep marked traffic from the CNI's masquerade. Gateway: SNAT to the egress IP. */
  NAT_POSTROUTING("nat", "POSTROUTING"),
  /** Fail closed: marked traffic that cannot take the tunnel, and tunnel traffic this node will not SNAT, is dropped. */
  FILTER_FORWARD("filter", "FORWARD"),
  /**
   * Gateway: the allow lists, for the new connections of sources whose gateway has one (jumped to from
   * NATGATE-FORWARD, not from a built-in chain): what matches an entry returns, the rest is refused.
   */
  FILTER_ALLOW("filter", null, "NATGATE-ALLOW");

  public final String table;
  /** The built-in chain whose first rule jumps here; null: only natgate's own chains jump here. */
  public final String builtin;
  public final String chain;

  Hook(String table, String builtin) {
    this(table, builtin, "NATGATE-" + builtin);
  }

  Hook(String table, String builtin, String chain) {
    this.table = table;
    this.builtin = builtin;
    this.chain = chain;
  }

  /** Whether a built-in chain jumps here (so that the jump is natgate's to keep first). */
  boolean jumpedFromBuiltin() {
    return builtin != null;
  }

  String jump() {
    return "-A " + builtin + " -j " + chain;
  }
}
