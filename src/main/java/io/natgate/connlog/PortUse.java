package io.natgate.connlog;

import io.natgate.dataplane.SnatPorts;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * SNAT port use: the connections tracked per egress IP and destination (protocol, address, port). Each needs a
 * source port of its own on the egress IP, so a destination runs out at {@link SnatPorts#count()} while others are
 * still fine: the top of the list is what to watch. Not thread-safe (the log's writer thread owns it).
 */
public final class PortUse {
  /** Above this share a destination is reported short of ports (agent status, the gateway's condition, an Event). */
  public static final double RAISE = 0.8;
  /** ... and stays reported until it falls to this share: a destination hovering at 80 % does not flap. */
  public static final double CLEAR = 0.7;
  /** Reported percentages are rounded down to this step, so that the report changes rarely, not per connection. */
  public static final int STEP_PERCENT = 5;

  /** One destination of one egress IP. */
  public record Destination(String egressIP, String protocol, String ip, Integer port) {
    @Override
    public String toString() {
      return protocol + " " + ip + (port == null ? "" : ":" + port);
    }
  }

  /** A destination's connections and their share of the ports. */
  public record Use(Destination destination, int connections, int ports) {
    public double ratio() {
      return (double) connections / ports;
    }

    /** The share in percent, rounded down to {@link #STEP_PERCENT}. */
    public int steppedPercent() {
      int percent = (int) Math.floor(100 * ratio());
      return percent - percent % STEP_PERCENT;
    }
  }

  private final int ports;
  private final Map<Destination, Integer> counts = new HashMap<>();

  public PortUse(SnatPorts ports) {
    this.ports = ports.count();
  }

  public void add(Destination d) {
    counts.merge(d, 1, Integer::sum);
  }

  public void remove(Destination d) {
    counts.computeIfPresent(d, (k, n) -> n <= 1 ? null : n - 1);
  }

  /** The most used destination of each egress IP. */
  public Map<String, Use> topByEgressIP() {
    Map<String, Use> top = new HashMap<>();
    counts.forEach((d, n) -> top.merge(d.egressIP(), new Use(d, n, ports),
        (a, b) -> a.connections() >= b.connections() ? a : b));
    return top;
  }

  /** Destinations above {@code ratio}, most used first. */
  public List<Use> above(double ratio) {
    List<Use> over = new ArrayList<>();
    counts.forEach((d, n) -> {
      if ((double) n / ports > ratio) {
        over.add(new Use(d, n, ports));
      }
    });
    over.sort(Comparator.comparingInt(Use::connections).reversed().thenComparing(u -> u.destination().toString()));
    return over;
  }

  /**
   * The destinations short of ports now, given those reported before (pure in its inputs): above {@link #RAISE}, or
   * reported before and still above {@link #CLEAR}. Most used first.
   */
  public List<Use> shortOfPorts(Set<Destination> reportedBefore) {
    return above(CLEAR).stream()
        .filter(u -> u.ratio() > RAISE || reportedBefore.contains(u.destination())).toList();
  }
}
