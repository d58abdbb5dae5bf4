package io.natgate.plan;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
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
    try {
      byte[] d = MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
      long v = 0;
      for (int i = 0; i < 8; i++) {
        v = (v << 8) | (d[i] & 0xff);
      }
      return v;
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
