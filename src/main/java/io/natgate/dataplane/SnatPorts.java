package io.natgate.dataplane;

/**
 * The source ports SNAT may give a connection on an egress IP. Each connection to one destination (protocol,
 * address, port) needs a port of its own, so a destination with more open connections than this has ports fails
 * new ones: what the port-use warning (io.natgate.connlog) measures against.
 *
 * <p>{@link #KERNEL} renders no range: the kernel keeps the pod's port when it is free and otherwise picks one in
 * 1024-65535 (pods' ephemeral ports are above 1023). A narrower range ({@code natgate.agent.snat-ports}) is rendered
 * as {@code --to-source IP:first-last} on a TCP and a UDP rule ahead of the portless one.
 */
public record SnatPorts(int first, int last) {
  public static final SnatPorts KERNEL = new SnatPorts(1024, 65535);
  /** The protocols a narrower range is rendered for (one SNAT rule each); others are SNATed without ports. */
  static final java.util.List<String> PROTOCOLS = java.util.List.of("tcp", "udp");

  public SnatPorts {
    if (first < 1 || last > 65535 || first > last) {
      throw new IllegalArgumentException("SNAT ports must be FIRST-LAST within 1-65535, got " + first + "-" + last);
    }
  }

  /** "FIRST-LAST", as in {@code natgate.agent.snat-ports}. */
  public static SnatPorts parse(String range) {
    String[] parts = range.trim().split("-", -1);
    try {
      if (parts.length == 2) {
        return new SnatPorts(Integer.parseInt(parts[0].trim()), Integer.parseInt(parts[1].trim()));
      }
    } catch (NumberFormatException e) {
      // the message below says what is expected
    }
    throw new IllegalArgumentException("natgate.agent.snat-ports: expected FIRST-LAST (e.g. 20000-29999), got '"
        + range + "'");
  }

  public int count() {
    return last - first + 1;
  }

  /** What follows the egress IP in {@code --to-source} on the rules of {@link #PROTOCOLS}. */
  String toSourceSuffix() {
    return ":" + first + "-" + last;
  }
}
