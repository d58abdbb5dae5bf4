package io.natgate.cni;

import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.peers.PeerView;
import io.natgate.peers.SequenceClock;
import io.natgate.plan.IpAddresses;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * The sources a gateway node learned from director nodes (natgate-cni's ADD there) before the operator's node state
 * lists them: each one pod for one egress IP of one gateway, kept for a bounded time ({@code ttlMillis}) or until
 * the director's DEL. What the operator's state says about a pod always wins; when it lists the pod, the learned
 * source adds nothing, so its expiry changes nothing in the kernel. The decisions are pure static functions;
 * the instance is the node's memory of them (thread-safe).
 */
public final class EarlySources {
  /** At most this many learned sources at once: a flood of ADDs cannot grow the gateway's sets without bound. */
  static final int MAX = 4096;

  public record Source(String gateway, String egressIP, String pod) {
  }

  public enum Verdict {
    ACCEPTED, REPLAY, STRANGER, OUTSIDE, FULL;

    public String label() {
      return name().toLowerCase(Locale.ROOT);
    }
  }

  private final long ttlMillis;
  private final Map<Source, Long> expires = new HashMap<>();
  private final Map<String, Long> lastSeq = new HashMap<>();

  public EarlySources(long ttlMillis) {
    this.ttlMillis = ttlMillis;
  }

  /**
   * Whether this node takes {@code pod} as a source of {@code egressIP} from another node: only for an egress IP of
   * the gateway that this node SNATs (holding it, or standing by: {@code part} as rendered, with its standby SNATs),
   * and only for an address of the cluster's own ranges that the state excludes from steering (the pod networks),
   * never an egress IP: a node cannot open the gateway for addresses on the node network or outside the cluster.
   *
   * @param part this node's part in the gateway as rendered (null: it has none)
   */
  public static Verdict accepts(NodeGatewayState part, String egressIP, String pod) {
    if (part == null || part.snat.stream().noneMatch(s -> s.egressIP.equals(egressIP))) {
      return Verdict.STRANGER;
    }
    if (part.snat.stream().anyMatch(s -> s.egressIP.equals(pod))
        || part.excludedCidrs.stream().noneMatch(c -> IpAddresses.inCidr(pod, c))) {
      return Verdict.OUTSIDE;
    }
    return Verdict.ACCEPTED;
  }

  /**
   * The rendered parts with the learned sources added to the SNAT of their egress IP, except for pods the part
   * mentions already (the operator's state decides for them).
   *
   * @param parts modified: their SNAT sources must be this caller's own lists
   */
  public static Map<String, NodeGatewayState> with(Map<String, NodeGatewayState> parts, Collection<Source> learned) {
    for (Source s : learned) {
      NodeGatewayState part = parts.get(s.gateway());
      if (part == null || mentions(part, s.pod())) {
        continue;
      }
      part.snat.stream().filter(sn -> sn.egressIP.equals(s.egressIP())).findFirst()
          .ifPresent(sn -> sn.sources.add(s.pod()));
    }
    return parts;
  }

  /**
   * The node IPs a gateway node relays a learned source to, so that a failover keeps it: the other nodes of the
   * egress IP's succession (none without a peer group).
   */
  public static Set<String> relayTo(NodeGatewayState part, String self, String egressIP) {
    Set<String> ips = new TreeSet<>();
    if (part == null || part.peers == null) {
      return ips;
    }
    Set<String> nodes = new TreeSet<>();
    part.peers.successions.stream().filter(su -> su.egressIP.equals(egressIP)).forEach(su -> {
      nodes.add(su.holder);
      nodes.addAll(su.standbys);
    });
    nodes.remove(self);
    part.peers.members.stream().filter(m -> nodes.contains(m.name) && m.ip != null).forEach(m -> ips.add(m.ip));
    return ips;
  }

  private static boolean mentions(NodeGatewayState part, String pod) {
    return part.snat.stream().anyMatch(sn -> sn.sources.contains(pod))
        || part.steer.stream().anyMatch(st -> st.sources.contains(pod));
  }

  /**
   * Takes (or refuses) an ADD or DEL from another node: a sequence number not above the sender's last one or far
   * from this node's clock is a replay; then {@link #accepts}; an ADD beyond {@link #MAX} is refused.
   */
  public synchronized Verdict receive(SourceMessage m, NodeGatewayState part, long wallMillis) {
    Long last = lastSeq.get(m.sender());
    if (last != null && m.seq() <= last
        || Math.abs(m.seq() / SequenceClock.PER_MILLI - wallMillis) > PeerView.MAX_SKEW.toMillis()) {
      return Verdict.REPLAY;
    }
    Source source = new Source(m.gateway(), m.egressIP(), m.pod());
    if (m.kind() == SourceMessage.Kind.DEL) {
      lastSeq.put(m.sender(), m.seq());
      expires.remove(source); // removing never opens anything
      return Verdict.ACCEPTED;
    }
    Verdict v = accepts(part, m.egressIP(), m.pod());
    if (v != Verdict.ACCEPTED) {
      return v;
    }
    purge(wallMillis);
    if (expires.size() >= MAX && !expires.containsKey(source)) {
      return Verdict.FULL;
    }
    lastSeq.put(m.sender(), m.seq());
    expires.put(source, wallMillis + ttlMillis);
    return Verdict.ACCEPTED;
  }

  /**
   * Forgets the sources whose pod the operator's states mention now: confirmed, the states decide for them from here
   * (a pod the operator removes later does not come back from here).
   *
   * @param parts this node's parts in the gateways as the operator's states have them, by gateway name
   */
  public synchronized void confirmed(Map<String, ? extends NodeGatewayState> parts) {
    expires.keySet().removeIf(s -> parts.get(s.gateway()) != null && mentions(parts.get(s.gateway()), s.pod()));
  }

  /** The sources learned and not expired at {@code wallMillis}. */
  public synchronized List<Source> live(long wallMillis) {
    purge(wallMillis);
    return new ArrayList<>(expires.keySet());
  }

  public long ttlMillis() {
    return ttlMillis;
  }

  private void purge(long wallMillis) {
    expires.values().removeIf(until -> until <= wallMillis);
  }
}
