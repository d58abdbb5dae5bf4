package io.natgate.connlog;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * SNAT port use: the connections tracked per egress IP and destination (protocol, address, port). Each needs a
 * source port of its own on the egress IP, so a destination runs out at {@link #PORTS}, while others are still fine:
 * the top of the list is what to watch. Not thread-safe (the log's writer thread owns it).
 */
public final class PortUse {
  /**
   * Source ports the kernel picks from when an SNAT rule names no range and the pod's port is above 1023 (as
   * ephemeral ports are): 1024 to 65535.
   */
  public static final int PORTS = 65535 - 1024 + 1;

  /** One destination of one egress IP, and its share of {@link #PORTS} in use. */
  public record Destination(String egressIP, String protocol, String ip, Integer port) {
    @Override
    public String toString() {
      return protocol + " " + ip + (port == null ? "" : ":" + port);
    }
  }

  public record Use(Destination destination, int connections) {
    public double ratio() {
      return (double) connections / PORTS;
    }
  }

  private final Map<Destination, Integer> counts = new HashMap<>();

  public void add(Destination d) {
    counts.merge(d, 1, Integer::sum);
  }

  public void remove(Destination d) {
    counts.computeIfPresent(d, (k, n) -> n <= 1 ? null : n - 1);
  }

  /** The most used destination of each egress IP. */
  public Map<String, Use> topByEgressIP() {
    Map<String, Use> top = new HashMap<>();
    counts.forEach((d, n) -> top.merge(d.egressIP(), new Use(d, n), (a, b) -> a.connections() >= b.connections() ? a : b));
    return top;
  }

  /** Destinations above {@code ratio}, most used first. */
  public List<Use> above(double ratio) {
    List<Use> over = new ArrayList<>();
    counts.forEach((d, n) -> {
      if ((double) n / PORTS > ratio) {
        over.add(new Use(d, n));
      }
    });
    over.sort(Comparator.comparingInt(Use::connections).reversed());
    return over;
  }
}
