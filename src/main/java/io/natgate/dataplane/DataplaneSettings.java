package io.natgate.dataplane;

import io.natgate.Defaults;
import java.util.Map;

/**
 * How natgate's kernel objects on one node are named and numbered. Everything natgate adds is recognisable by
 * these: chains {@code NATGATE-*}, sets {@code natgate-*}, the tunnel device, policy rules at {@link #rulePriority}
 * and routes with protocol {@link #ROUTE_PROTOCOL} in tables from {@link #tableBase}.
 *
 * @param uplink       the interface that holds the node's InternalIP: egress IPs are added here, SNAT leaves here
 * @param tunnelDevice VXLAN-GPE device (external mode) carrying steered traffic to whichever node holds an egress IP
 * @param tunnelPort   its UDP port
 * @param markMask     the fwmark bits natgate may use (one value per steered egress IP, the top one means drop)
 * @param tableBase    routing table of mark value 1; mark value n uses tableBase + n
 * @param rulePriority priority of natgate's policy rules (ahead of main at 32766)
 * @param addressLifetimeSeconds lifetime of the egress IPs on the uplink, renewed with every heartbeat, so that the
 *                     kernel itself drops them when the agent dies (0: forever)
 * @param snatPorts    the source ports SNAT gives connections on an egress IP
 */
public record DataplaneSettings(String uplink, String tunnelDevice, int tunnelPort, int markMask, int tableBase,
    int rulePriority, int addressLifetimeSeconds, SnatPorts snatPorts) {
  public static final int ROUTE_PROTOCOL = 78;
  public static final int TUNNEL_VNI = 7400;
  /** Link-local address on the tunnel device: reverse-path filtering refuses packets on a device with no address. */
  public static final String TUNNEL_ADDRESS = "169.254.74.0";
  /** Kernel record of the egress IPs this agent added to the uplink, so that it can remove them after a restart. */
  public static final String HELD_SET = "natgate-held";

  /**
   * The conntrack mark bit of connections the gateway translates for a gateway with the connection log on: what
   * the log's listener filters on. A conntrack mark, not the packet fwmark of {@code markMask}; the top bit, which
   * CNIs and kube-proxy leave alone.
   */
  public static final int LOG_CTMARK = 0x80000000;

  /**
   * The start of the NFLOG prefix of the packets an allow list refuses; the egress IP they would have left with
   * follows. What the connection log recognises them by.
   */
  public static final String DENIED_PREFIX = "natgate-denied ";

  public DataplaneSettings {
    if (markMask == 0) {
      throw new IllegalArgumentException("markMask must have at least one bit");
    }
  }

  /** With the kernel's SNAT ports ({@link SnatPorts#KERNEL}). */
  public DataplaneSettings(String uplink, String tunnelDevice, int tunnelPort, int markMask, int tableBase,
      int rulePriority, int addressLifetimeSeconds) {
    this(uplink, tunnelDevice, tunnelPort, markMask, tableBase, rulePriority, addressLifetimeSeconds, SnatPorts.KERNEL);
  }

  public static DataplaneSettings defaults(String uplink) {
    return new DataplaneSettings(uplink, Defaults.TUNNEL_DEVICE, Defaults.TUNNEL_PORT,
        Defaults.markMask(Defaults.MARK_MASK), Defaults.TABLE_BASE, Defaults.RULE_PRIORITY, 0);
  }

  /** Loose reverse-path check on the tunnel: steered packets arrive there from pods routed through the node network. */
  public Map<String, String> tunnelSysctls() {
    return Map.of("net.ipv4.conf." + tunnelDevice + ".rp_filter", "2");
  }

  /** {@link #LOG_CTMARK} as value/mask. */
  public static String logMark() {
    return "0x" + Integer.toHexString(LOG_CTMARK) + "/0x" + Integer.toHexString(LOG_CTMARK);
  }

  /** What follows an egress IP's address in {@code ip address replace/change}. */
  String addressOptions() {
    return " dev " + uplink + (addressLifetimeSeconds == 0 ? ""
        : " valid_lft " + addressLifetimeSeconds + " preferred_lft " + addressLifetimeSeconds);
  }

  int markShift() {
    return Integer.numberOfTrailingZeros(markMask);
  }

  /** The highest mark value; reserved for selected traffic that has no gateway and must be dropped. */
  int dropSlot() {
    return markMask >>> markShift();
  }

  String mark(int slot) {
    return "0x" + Integer.toHexString(slot << markShift()) + "/0x" + Integer.toHexString(markMask);
  }
}
