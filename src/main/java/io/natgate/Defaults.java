package io.natgate;

import java.time.Duration;

/**
 * The one place for natgate's default settings: {@code NatgateConfig}'s {@code @WithDefault}s are built from these
 * constants, and so are the plain settings values tests and tools start from.
 */
public final class Defaults {
  /** Namespace of the agents' Leases (and natgate's own). */
  public static final String HEARTBEAT_NAMESPACE = "natgate-system";
  public static final String EVENT_NAMESPACE = "default";
  public static final long RENEW_INTERVAL_MS = 200;
  public static final long HEARTBEAT_TIMEOUT_MS = 900;
  /** Below the timeout: an agent releases its IPs before the operator may give them to another node. */
  public static final long FENCE_AFTER_MS = 600;
  public static final long REPAIR_INTERVAL_S = 10;
  public static final int TUNNEL_PORT = 4790;
  public static final String TUNNEL_DEVICE = "natgate0";
  /** Clear of the CNI's and kube-proxy's marks (0x4000, 0x8000). */
  public static final String MARK_MASK = "0x0ff00000";
  public static final int TABLE_BASE = 7400;
  public static final int RULE_PRIORITY = 7400;
  /** NFLOG group of the packets a gateway refuses by its allow list: where the connection log reads them. */
  public static final int DENIED_NFLOG_GROUP = 7400;
  /** How often an agent counts its names' sets (status is written only when a count changed). */
  public static final long NAME_COUNT_INTERVAL_S = 5;
  /** Peer heartbeats: UDP port on the node IP, how often, when a member counts as dead, the takeover's margin. */
  public static final int PEER_PORT = 4791;
  public static final long PEER_INTERVAL_MS = 50;
  public static final long PEER_TIMEOUT_MS = 250;
  public static final long PEER_TAKEOVER_MARGIN_MS = 150;
  /**
   * How long the node that took an egress IP over from a stopping agent forwards to that node the replies it does not
   * know, unless that node's next agent is heard first: replies of connections in flight at the switch, and their
   * retransmissions.
   */
  public static final long PEER_HANDOVER_FORWARD_MS = 10_000;

  /** DNS path (io.natgate.dns): the proxy's port on the node IP (UDP and TCP), the pairs' UDP port between nodes. */
  public static final int DNS_PROXY_PORT = 4792;
  public static final int DNS_PAIR_PORT = 4793;
  /** Added to an answer's TTL before its addresses leave the gateway's sets. */
  public static final long DNS_GRACE_S = 5;
  /**
   * How long an answer waits for the gateway's confirmation before the failure policy decides: below a stub
   * resolver's 5 s retry, above what a loaded node takes (up to 0.9 s measured at load 100 on 2 cores).
   */
  public static final long DNS_CONFIRM_TIMEOUT_MS = 2000;

  /**
   * natgate-cni (io.natgate.cni): a director node tells the gateway of a new pod on this UDP port (node network, signed
   * with the peer key); ADD waits this long for the gateway's ack (below TCP's first SYN retransmission, 1 s), and the
   * gateway keeps what it learned this way this long unless the operator's node state lists the pod by then.
   */
  public static final int CNI_SOURCE_PORT = 4794;
  public static final long CNI_CONFIRM_TIMEOUT_MS = 800;
  public static final long CNI_EARLY_SOURCE_TTL_S = 60;

  private Defaults() {
  }

  public static Duration renewInterval() {
    return Duration.ofMillis(RENEW_INTERVAL_MS);
  }

  public static Duration heartbeatTimeout() {
    return Duration.ofMillis(HEARTBEAT_TIMEOUT_MS);
  }

  public static Duration fenceAfter() {
    return Duration.ofMillis(FENCE_AFTER_MS);
  }

  public static Duration repairInterval() {
    return Duration.ofSeconds(REPAIR_INTERVAL_S);
  }

  /** A mark mask as configured ({@code 0x0ff00000} or decimal). */
  public static int markMask(String text) {
    return (int) (long) Long.decode(text);
  }
}
