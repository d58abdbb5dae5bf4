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
  FILTER_FORWARD("filter", "FORWARD");

  public final String table;
  public final String builtin;
  public final String chain;

  Hook(String table, String builtin) {
    this.table = table;
    this.builtin = builtin;
    this.chain = "NATGATE-" + builtin;
  }

  String jump() {
    return "-A " + builtin + " -j " + chain;
  }
}
