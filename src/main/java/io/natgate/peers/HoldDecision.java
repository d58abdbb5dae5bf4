package io.natgate.peers;

import io.natgate.api.v1alpha1.NodeGatewayState;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Which egress IPs of one gateway this node holds now: a pure function of its node state, what it hears of its
 * peers and whether its Lease is fresh.
 * <p>
 * A group of three or more members decides without the API server. A member holds nothing unless it has a quorum
 * (a majority of the group, itself included, of members it hears and that hear it within the peer timeout): cut
 * off from its peers, a holder releases its IPs within the peer timeout, whatever the API server says. With a
 * quorum, an IP is held by the first node of its succession (the assigned holder, then the standbys in order) that
 * can: a standby steps in only when every node before it is silent or without a quorum, and keeps the IP until the
 * operator adopts it (a holder that comes back waits, unless both took it at once: then the later one yields); any
 * node adds an IP only when no other member has claimed it within {@code takeoverAfter} (the peer timeout plus a margin for the holder to
 * drop it), so at most one node holds it, except when an agent dies while its kernel keeps the address until its
 * lifetime ends.
 * <p>
 * A planned move (the succession names a {@code releasing} node) is make-before-break: the releasing node keeps the
 * IP while the new holder adds it despite that node's claim; both hold it until the operator drops the entry.
 * <p>
 * A smaller group cannot keep a quorum through the loss of one member: it keeps the Lease rule (hold what the
 * operator assigned while the Lease is renewed). A node that has just joined its group (out of the Lease rule, or
 * the group changed) keeps what it holds by that rule for one peer timeout, the time its peers need to hear it.
 */
public final class HoldDecision {
  /** The fewest members for which a group decides by quorum. */
  public static final int MIN_GROUP = io.natgate.plan.PeerGroups.MIN_GROUP;

  /**
   * @param peerTimeout   a member not heard for this long is dead to this node
   * @param takeoverAfter an IP whose last claimant has been silent this long is free (peer timeout plus margin)
   */
  public record Timing(Duration peerTimeout, Duration takeoverAfter) {
  }

  private HoldDecision() {
  }

  /** The same for a node that has had its peers for long (not one that has just joined a group). */
  public static Set<String> decide(String self, NodeGatewayState state, Map<String, PeerView.Peer> peers,
      Set<String> held, boolean leaseFresh, Timing timing) {
    return decide(self, state, peers, held, leaseFresh, Long.MAX_VALUE, timing);
  }

  /**
   * @param held         this gateway's egress IPs this node holds now
   * @param leaseFresh   this node's Lease was renewed within its fence deadline
   * @param joinedMillis how long this node has had its current peers (see {@link PeerView#members})
   */
  public static Set<String> decide(String self, NodeGatewayState state, Map<String, PeerView.Peer> peers,
      Set<String> held, boolean leaseFresh, long joinedMillis, Timing timing) {
    Set<String> hold = new TreeSet<>();
    if (!peerRule(state)) {
      if (leaseFresh) {
        state.snat.stream().filter(s -> s.holdAddress).forEach(s -> hold.add(s.egressIP));
      }
      return hold;
    }
    List<String> group = state.peers.members.stream().map(m -> m.name).toList();
    if (!quorate(self, group, peers)) {
      // A group just joined (it grew out of the Lease rule, or changed) has not had a peer timeout to hear and be
      // heard: what the operator assigned and this node holds is kept by the Lease rule meanwhile, as it was held
      // before. After that, no quorum means a partition, and the holder releases as ever.
      if (leaseFresh && joinedMillis <= timing.peerTimeout().toMillis()) {
        state.snat.stream().filter(s -> s.holdAddress && held.contains(s.egressIP)).forEach(s -> hold.add(s.egressIP));
      }
      return hold;
    }
    for (NodeGatewayState.Succession s : state.peers.successions) {
      if (self.equals(s.releasing)) {
        // A planned move away from this node: kept until the operator has seen the new holder take it.
        if (held.contains(s.egressIP)) {
          hold.add(s.egressIP);
        }
        continue;
      }
      List<String> order = new ArrayList<>();
      order.add(s.holder);
      order.addAll(s.standbys);
      int me = order.indexOf(self);
      if (me < 0) {
        continue;
      }
      List<String> before = order.subList(0, me);
      if (held.contains(s.egressIP)) {
        // Kept until a node before it in the succession claims it too (two took it at once): a holder that comes
        // back does not take it back while this node holds it; the operator adopts this node instead.
        if (before.stream().noneMatch(m -> claims(m, s.egressIP, peers, timing))) {
          hold.add(s.egressIP);
        }
      } else if (before.stream().noneMatch(m -> able(m, group, peers, timing))
          && peers.keySet().stream().filter(m -> !m.equals(s.releasing))
              .noneMatch(m -> claims(m, s.egressIP, peers, timing))) {
        // The releasing node's claim does not stop it: make before break.
        hold.add(s.egressIP);
      }
    }
    return hold;
  }

  /** Whether the member may hold the IP by what is known of it: it claimed it, and was heard of lately enough. */
  static boolean claims(String member, String egressIP, Map<String, PeerView.Peer> peers, Timing timing) {
    PeerView.Peer p = peers.get(member);
    return p != null && p.holds().contains(egressIP) && p.silentMillis() <= timing.takeoverAfter().toMillis();
  }

  /** Whether this gateway's group decides by quorum (else by the Lease). */
  public static boolean peerRule(NodeGatewayState state) {
    return state.peers != null && state.peers.members.size() >= MIN_GROUP;
  }

  /** A majority of the group, this node included, hears it and is heard by it. */
  static boolean quorate(String self, List<String> group, Map<String, PeerView.Peer> peers) {
    long mutual = group.stream().filter(m -> !m.equals(self)).map(peers::get)
        .filter(p -> p != null && p.direct() && p.hearsMe()).count();
    return mutual + 1 >= majority(group.size());
  }

  /**
   * Whether a member could hold an IP: heard of within the timeout and, when heard directly, hearing a majority
   * itself. Known only through gossip, it counts as able: waiting is the safe side.
   */
  static boolean able(String member, List<String> group, Map<String, PeerView.Peer> peers, Timing timing) {
    PeerView.Peer p = peers.get(member);
    if (p == null || p.silentMillis() > timing.peerTimeout().toMillis()) {
      return false;
    }
    return !p.direct() || p.hears().stream().filter(group::contains).count() + 1 >= majority(group.size());
  }

  static int majority(int size) {
    return size / 2 + 1;
  }

  /**
   * The part to render given what this node holds: its assigned SNATs and, for standby IPs, the SNAT kept ready;
   * each egress IP's address only when it is held, and its own pods not steered to a standby IP it took over.
   */
  public static NodeGatewayState withHolding(NodeGatewayState part, Set<String> holding) {
    return withHolding(part, holding, null);
  }

  /**
   * The same for node {@code self}: a planned move's {@code releasing} mark is kept only where another node is
   * releasing, so that only the node taking the IP renders the forwarding of the releasing node's replies.
   */
  public static NodeGatewayState withHolding(NodeGatewayState part, Set<String> holding, String self) {
    return withHolding(part, holding, self, Map.of());
  }

  /**
   * The same, where a stopping member handed over IPs that this node now holds ({@code handedOver}: egress IP to that
   * member, {@link PeerLiveness#handedOver}): such an IP is rendered as a planned move away from that member, so that
   * this node forwards it the replies of the connections it translated (its kernel still knows them) rather than
   * answer them with resets. Only where this node holds the IP: the forwarding is one way, from the holder.
   */
  public static NodeGatewayState withHolding(NodeGatewayState part, Set<String> holding, String self,
      Map<String, String> handedOver) {
    NodeGatewayState r = new NodeGatewayState(part);
    if (part.peers != null && self != null) {
      r.peers = new NodeGatewayState.Peers();
      r.peers.members = part.peers.members;
      r.peers.standby = part.peers.standby;
      r.peers.successions = part.peers.successions.stream().map(x -> new NodeGatewayState.Succession(x.egressIP,
          x.holder, x.standbys, releasing(x, holding, self, handedOver))).toList();
    }
    r.snat = new ArrayList<>();
    for (NodeGatewayState.Snat s : part.snat) {
      r.snat.add(new NodeGatewayState.Snat(s.egressIP, s.holdAddress && holding.contains(s.egressIP), s.sources));
    }
    // A standby that took an IP over SNATs its own pods itself (its standby SNAT lists them): steering them into the
    // tunnel would send them to the address this node now has, and they would get no answer until the operator
    // replans (with the API down, for as long as it is down). IPs the operator assigned or left releasing here are
    // rendered as written.
    Set<String> takenOver = new TreeSet<>();
    if (part.peers != null) {
      for (NodeGatewayState.Snat s : part.peers.standby) {
        if (part.snat.stream().noneMatch(a -> a.egressIP.equals(s.egressIP))) {
          r.snat.add(new NodeGatewayState.Snat(s.egressIP, holding.contains(s.egressIP), s.sources));
          if (holding.contains(s.egressIP)) {
            takenOver.add(s.egressIP);
          }
        }
      }
    }
    r.steer = new ArrayList<>(part.steer.stream()
        .filter(st -> st.egressIP == null || !takenOver.contains(st.egressIP)).toList());
    return r;
  }

  /**
   * The node this one renders as releasing the IP: the operator's planned move away from another node, else the
   * stopping member that handed it over to this node, which holds it; never this node itself.
   */
  private static String releasing(NodeGatewayState.Succession x, Set<String> holding, String self,
      Map<String, String> handedOver) {
    if (x.releasing != null) {
      return self.equals(x.releasing) ? null : x.releasing;
    }
    String from = handedOver.get(x.egressIP);
    return from != null && !from.equals(self) && holding.contains(x.egressIP) ? from : null;
  }

  /**
   * The part a node renders as it stops for a restart (pure), from the part it renders now: in a peer group, every
   * egress IP it holds is released and the IP's sources (its own pods among them) are steered into the tunnel toward
   * the IP, which follows it to the next node of its succession; the SNAT stays, without the address, as a standby's
   * does. Kept SNATed here, its own pods would leave with the IP while their replies went to the node that took it
   * over. The other sources' packets reach this node only through the tunnel, to the address it releases. A part
   * without a peer group, or an IP nobody else may take, is left as it is.
   */
  public static NodeGatewayState leaving(NodeGatewayState rendered, String self) {
    if (!peerRule(rendered)) {
      return rendered;
    }
    NodeGatewayState r = new NodeGatewayState(rendered);
    r.snat = new ArrayList<>();
    r.steer = new ArrayList<>(rendered.steer);
    for (NodeGatewayState.Snat s : rendered.snat) {
      String next = s.holdAddress ? next(rendered.peers, s.egressIP, self) : null;
      if (next == null) {
        r.snat.add(s);
        continue;
      }
      r.snat.add(new NodeGatewayState.Snat(s.egressIP, false, s.sources));
      Set<String> sources = new TreeSet<>(s.sources);
      r.steer.stream().filter(st -> s.egressIP.equals(st.egressIP)).forEach(st -> sources.addAll(st.sources));
      r.steer.removeIf(st -> s.egressIP.equals(st.egressIP));
      String nextIP = rendered.peers.members.stream().filter(m -> next.equals(m.name)).map(m -> m.ip).findFirst()
          .orElse(null);
      r.steer.add(new NodeGatewayState.Steer(s.egressIP, next, nextIP, new ArrayList<>(sources)));
    }
    return r;
  }

  /** The first node of the IP's succession other than {@code self}: the one that takes it over (null: none). */
  private static String next(NodeGatewayState.Peers peers, String egressIP, String self) {
    return peers.successions.stream().filter(x -> egressIP.equals(x.egressIP)).findFirst()
        .flatMap(x -> java.util.stream.Stream.concat(java.util.stream.Stream.of(x.holder), x.standbys.stream())
            .filter(n -> n != null && !n.equals(self)).findFirst())
        .orElse(null);
  }

  /** The egress IPs a node may hold for this part: assigned or standby. */
  public static Set<String> egressIPs(NodeGatewayState part) {
    Set<String> ips = new TreeSet<>();
    part.snat.stream().filter(s -> s.holdAddress).forEach(s -> ips.add(s.egressIP));
    if (part.peers != null) {
      part.peers.standby.forEach(s -> ips.add(s.egressIP));
    }
    return ips;
  }
}
