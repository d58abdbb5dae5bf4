package io.natgate.plan;

import io.natgate.Sha256;
import java.util.Comparator;
import java.util.List;

/** IPv4 ordering and the stable mapping of pod IPs onto a gateway's egress IPs. */
public final class IpAddresses {
  /** Numeric order of dotted IPv4 addresses (so 10.0.0.9 sorts before 10.0.0.10). */
  public static final Comparator<String> ORDER = Comparator.comparingLong(IpAddresses::toLong);

  private IpAddresses() {
  }

  public static long toLong(String ip) {
    long v = 0;
    for (String part : ip.split("\\.")) {
      v = (v << 8) | Long.parseLong(part);
    }
    return v;
  }

  /** The dotted IPv4 address of {@link #toLong}'s number (its low 32 bits). */
  public static String fromLong(long v) {
    return ((v >>> 24) & 0xff) + "." + ((v >>> 16) & 0xff) + "." + ((v >>> 8) & 0xff) + "." + (v & 0xff);
  }

  /** Whether the IPv4 address lies in the IPv4 CIDR (a.b.c.d/n; a bare address is a /32). */
  public static boolean inCidr(String ip, String cidr) {
    int slash = cidr.indexOf('/');
    int bits = slash < 0 ? 32 : Integer.parseInt(cidr.substring(slash + 1));
    long mask = bits == 0 ? 0 : (0xffffffffL << (32 - bits)) & 0xffffffffL;
    return (toLong(ip) & mask) == (toLong(slash < 0 ? cidr : cidr.substring(0, slash)) & mask);
  }

  /**
   * Rendezvous hashing: each pod IP goes to the egress IP with the highest hash of the pair, so adding or removing
   * one egress IP moves only the pods that were (or will be) on it.
   */
  public static String egressIPFor(String podIP, List<String> egressIPs) {
    String best = null;
    long bestScore = Long.MIN_VALUE;
    for (String egressIP : egressIPs) {
      long score = hash(podIP + "/" + egressIP);
      if (best == null || score > bestScore) {
        best = egressIP;
        bestScore = score;
      }
    }
    return best;
  }

  private static long hash(String s) {
    return Sha256.first64Bits(s);
  }
}
