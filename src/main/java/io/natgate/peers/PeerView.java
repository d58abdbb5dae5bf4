package io.natgate.peers;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;

/**
 * What this node hears of its peers, fed with received datagrams. Refuses (and says why) a datagram whose MAC does
 * not match, a sender that is not a member of any of this node's groups, and a sequence number not above the last
 * accepted from that sender or too far from this node's clock. Times are passed in (nanoTime scale for ages, wall
 * clock only for the replay window), so that it is tested without sleeping. Thread-safe.
 */
public final class PeerView {
  /** Why a datagram was refused; the metric's {@code reason} label. */
  public enum Verdict {
    ACCEPTED, MAC, STRANGER, REPLAY;

    public String label() {
      return name().toLowerCase(java.util.Locale.ROOT);
    }
  }

  /** A sequence number further than this from the receiver's clock is a replay (or a clock to fix). */
  public static final Duration MAX_SKEW = Duration.ofSeconds(30);

  /**
   * One member as this node knows it now.
   *
   * @param direct       this node received a message from it within the peer timeout
   * @param hearsMe      its last direct message lists this node among those it hears
   * @param hears        the members its last direct message says it hears (empty when none came)
   * @param silentMillis since the last evidence that it was alive, its own message or another member's gossip (never
   *                     heard of: since it became a member)
   * @param holds        the egress IPs it held by the freshest news of it
   */
  public record Peer(boolean direct, boolean hearsMe, Set<String> hears, long silentMillis, Set<String> holds) {
  }

  private record Direct(long atNanos, PeerMessage message) {
  }

  private record News(long seq, long aliveAtNanos, Set<String> holds) {
  }

  private final String self;
  private final Duration timeout;
  private Set<String> members = Set.of();
  private final Map<String, Direct> direct = new HashMap<>();
  private final Map<String, News> news = new HashMap<>();
  private final Map<String, Long> joined = new HashMap<>(); // when each member became one, nanoTime
  private long membersSince;

  public PeerView(String self, Duration timeout) {
    this.self = self;
    this.timeout = timeout;
  }

  /**
   * The members of all of this node's groups (itself included); others' datagrams are refused. A member new to this
   * node counts as silent since {@code nowNanos}, not since ever: it gets a peer timeout to be heard before it is
   * taken for dead, as the others get after their last heartbeat.
   */
  public synchronized void members(Set<String> names, long nowNanos) {
    if (names.equals(members)) {
      return;
    }
    members = Set.copyOf(names);
    membersSince = nowNanos;
    direct.keySet().retainAll(members);
    news.keySet().retainAll(members);
    joined.keySet().retainAll(members);
    members.forEach(m -> joined.putIfAbsent(m, nowNanos));
  }

  /** How long this node has had its current members, in milliseconds. */
  public synchronized long membersForMillis(long nowNanos) {
    return Math.max(0, (nowNanos - membersSince) / 1_000_000);
  }

  public synchronized Verdict receive(byte[] data, int length, PeerCodec codec, long nowNanos, long wallMillis) {
    Optional<PeerMessage> decoded = codec.decode(data, length);
    if (decoded.isEmpty()) {
      return Verdict.MAC;
    }
    PeerMessage m = decoded.get();
    if (m.sender().equals(self) || !members.contains(m.sender())) {
      return Verdict.STRANGER;
    }
    Direct last = direct.get(m.sender());
    if (last != null && m.seq() <= last.message().seq()
        || Math.abs(m.sentMillis() - wallMillis) > MAX_SKEW.toMillis()) {
      return Verdict.REPLAY;
    }
    direct.put(m.sender(), new Direct(nowNanos, m));
    learn(m.sender(), m.seq(), nowNanos, m.holds());
    m.hears().forEach((name, heard) -> {
      if (!name.equals(self) && members.contains(name)) {
        learn(name, heard.seq(), nowNanos - heard.agoMillis() * 1_000_000L, heard.holds());
      }
    });
    return Verdict.ACCEPTED;
  }

  private void learn(String member, long seq, long aliveAtNanos, Set<String> holds) {
    News before = news.get(member);
    if (before == null) {
      news.put(member, new News(seq, aliveAtNanos, holds));
      return;
    }
    // The freshest sequence number tells what it holds; the latest evidence tells when it was alive.
    news.put(member, new News(Math.max(seq, before.seq()), Math.max(aliveAtNanos, before.aliveAtNanos()),
        seq > before.seq() ? holds : before.holds()));
  }

  /**
   * The egress IPs members handed over as they stopped (their last message a farewell that names them), with the
   * member by IP: for {@code forAtMost} after that farewell, and no longer once the member is heard again (its next
   * agent runs).
   */
  public synchronized Map<String, String> handedOver(long nowNanos, Duration forAtMost) {
    Map<String, String> byIP = new TreeMap<>();
    direct.forEach((m, d) -> {
      if (nowNanos - d.atNanos() <= forAtMost.toNanos()) {
        d.message().handsOver().forEach(ip -> byIP.put(ip, m));
      }
    });
    return byIP;
  }

  /** Every member but this node, as known at {@code nowNanos}. */
  public synchronized Map<String, Peer> peers(long nowNanos) {
    Map<String, Peer> peers = new TreeMap<>();
    for (String m : members) {
      if (m.equals(self)) {
        continue;
      }
      Direct d = direct.get(m);
      boolean fresh = d != null && nowNanos - d.atNanos() <= timeout.toNanos();
      News n = news.get(m);
      peers.put(m, new Peer(fresh, fresh && d.message().hears().containsKey(self),
          fresh ? d.message().hears().keySet() : Set.of(),
          Math.max(0, (nowNanos - (n == null ? joined.get(m) : n.aliveAtNanos())) / 1_000_000),
          n == null ? Set.of() : n.holds()));
    }
    return peers;
  }

  /**
   * The first moment after {@code nowNanos} at which a verdict of {@link #peers} can change by time alone: a member
   * heard directly stops being fresh (the timeout), or the last evidence of one becomes older than one of
   * {@code ages} (the deciding rules' thresholds). {@link Long#MAX_VALUE} when nothing will change without news.
   */
  public synchronized long nextChange(long nowNanos, List<Duration> ages) {
    long next = Long.MAX_VALUE;
    for (Direct d : direct.values()) {
      next = earliestAfter(nowNanos, next, d.atNanos() + timeout.toNanos());
    }
    for (String m : members) {
      if (m.equals(self)) {
        continue;
      }
      long since = news.containsKey(m) ? news.get(m).aliveAtNanos() : joined.get(m);
      for (Duration age : ages) {
        next = earliestAfter(nowNanos, next, since + age.toNanos());
      }
    }
    return next;
  }

  /** {@code at} if it is after {@code nowNanos} and before {@code next} ({@link Long#MAX_VALUE}: none yet), else next. */
  static long earliestAfter(long nowNanos, long next, long at) {
    return at - nowNanos > 0 && (next == Long.MAX_VALUE || at - nowNanos < next - nowNanos) ? at : next;
  }

  /** What this node tells the others it hears: each member it heard directly within the timeout. */
  public synchronized Map<String, PeerMessage.Heard> hears(long nowNanos) {
    Map<String, PeerMessage.Heard> hears = new TreeMap<>();
    direct.forEach((m, d) -> {
      long ago = nowNanos - d.atNanos();
      if (ago <= timeout.toNanos()) {
        hears.put(m, new PeerMessage.Heard(d.message().seq(), (int) (ago / 1_000_000), d.message().holds()));
      }
    });
    return hears;
  }
}
