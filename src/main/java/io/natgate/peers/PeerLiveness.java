package io.natgate.peers;

import io.natgate.Defaults;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.natgate.api.v1alpha1.NodeGatewayState;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedSelectorException;
import java.nio.channels.DatagramChannel;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.time.Duration;
import java.util.Collection;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;
import java.util.function.Supplier;
import org.jboss.logging.Logger;

/**
 * The agent's peer heartbeats: sends one to every member of this node's groups each {@code interval} (UDP on the
 * node network), feeds what it receives into a {@link PeerView} as it arrives, and decides with {@link HoldDecision}
 * which egress IPs this node holds, telling {@code onChange} when that changes: every few milliseconds, and at the
 * moment a member's silence crosses a threshold (so a takeover or a fence is not late by a tick).
 */
public final class PeerLiveness implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(PeerLiveness.class);
  /** How often the holding decision is taken again: a small part of the peer timeout. */
  static final Duration DECIDE_EVERY = Duration.ofMillis(10);
  /**
   * A release is carried out once decided again this much later: a thread that was not scheduled for a while (a
   * loaded node) first catches up on the heartbeats that arrived meanwhile. Part of the takeover margin.
   */
  static final Duration CONFIRM_RELEASE = Duration.ofMillis(30);
  /** Copies of the last heartbeat of a node that stops. */
  static final int FAREWELLS = 3;
  /** See {@link Defaults#PEER_HANDOVER_FORWARD_MS}. */
  static final Duration HANDOVER_FORWARD = Duration.ofMillis(Defaults.PEER_HANDOVER_FORWARD_MS);

  /**
   * @param port           UDP port on the node IP
   * @param interval       between two heartbeats
   * @param timeout        a member not heard for this long is dead (a holder without a quorum for this long fences)
   * @param takeoverMargin added to the timeout before a standby takes an IP whose holder went silent
   */
  public record Settings(int port, Duration interval, Duration timeout, Duration takeoverMargin) {
    public static Settings defaults() {
      return new Settings(Defaults.PEER_PORT, Duration.ofMillis(Defaults.PEER_INTERVAL_MS),
          Duration.ofMillis(Defaults.PEER_TIMEOUT_MS), Duration.ofMillis(Defaults.PEER_TAKEOVER_MARGIN_MS));
    }

    public HoldDecision.Timing timing() {
      return new HoldDecision.Timing(timeout, timeout.plus(takeoverMargin));
    }
  }

  private final String self;
  private final String selfIP;
  private final Settings settings;
  private volatile byte[] key;
  private final Supplier<Collection<? extends NodeGatewayState>> states;
  private final BooleanSupplier leaseFresh;
  private final Consumer<Set<String>> onChange;
  private final Supplier<Set<String>> inKernel;
  private final PeerView view;
  private final SequenceClock sequence = new SequenceClock();
  private final Map<PeerView.Verdict, Counter> rejected = new EnumMap<>(PeerView.Verdict.class);
  /**
   * Three threads: sending never waits for deciding, nor the other way round, even while a timed decision waits for
   * the periodic one. Receiving has a thread of its own.
   */
  private final ScheduledExecutorService timer = Executors.newScheduledThreadPool(3, r -> {
    Thread t = new Thread(r, "natgate-peers");
    t.setDaemon(true);
    return t;
  });
  private volatile Map<String, String> members = Map.of(); // name -> IP, every group of this node
  private volatile Set<String> holding = Set.of();
  private volatile Map<String, String> handedOver = Map.of(); // egress IP held here -> the stopping member it was
  private long releaseSeenNanos; // when the current decision to release was first taken; 0: none pending
  private volatile long heldDecidedNanos; // when a decision last held an IP
  private volatile DatagramChannel channel;
  private volatile Selector arrivals;
  /** Serializes decisions: the periodic one and the one timed for the next threshold run on different threads. */
  private final Object deciding = new Object();
  private ScheduledFuture<?> timed; // the next decision timed for a threshold; guarded by deciding
  private PeerCodec decoder;
  private PeerCodec encoder;

  /**
   * @param states     this node's part in each gateway (the node states' specs)
   * @param leaseFresh whether the Lease was renewed within the fence deadline (for groups too small for a quorum)
   * @param onChange   called (on the deciding thread) with every IP this node should hold when that set changes
   * @param inKernel   the egress IPs the kernel still holds: claimed until released there, not just decided
   */
  public PeerLiveness(String self, String selfIP, Settings settings, MeterRegistry metrics,
      Supplier<Collection<? extends NodeGatewayState>> states, BooleanSupplier leaseFresh,
      Consumer<Set<String>> onChange, Supplier<Set<String>> inKernel) {
    this.self = self;
    this.selfIP = selfIP;
    this.settings = settings;
    this.states = states;
    this.leaseFresh = leaseFresh;
    this.onChange = onChange;
    this.inKernel = inKernel;
    this.view = new PeerView(self, settings.timeout());
    for (PeerView.Verdict v : PeerView.Verdict.values()) {
      if (v != PeerView.Verdict.ACCEPTED) {
        rejected.put(v, Counter.builder("natgate_agent_peer_rejected_total").tag("reason", v.label())
            .description("Peer heartbeats dropped: wrong MAC, sender not in a group of this node, or replayed")
            .register(metrics));
      }
    }
    metrics.gauge("natgate_agent_peers_heard", this,
        p -> p.view.peers(System.nanoTime()).values().stream().filter(PeerView.Peer::direct).count());
  }

  /** Starts deciding; until {@link #listen} this node has no quorum and holds only in groups too small for one. */
  public PeerLiveness start() {
    decide(); // before the first apply reads it
    timer.scheduleWithFixedDelay(this::decide, DECIDE_EVERY.toMillis(), DECIDE_EVERY.toMillis(), TimeUnit.MILLISECONDS);
    return this;
  }

  /**
   * Starts the heartbeats with the group key, unless the node IP's port cannot be bound (logged: then this node
   * never has a quorum).
   */
  public void listen(byte[] groupKey) {
    key = groupKey.clone();
    try {
      DatagramChannel c = DatagramChannel.open(StandardProtocolFamily.INET);
      c.bind(new InetSocketAddress(selfIP, settings.port()));
      c.configureBlocking(false);
      channel = c;
      timer.scheduleAtFixedRate(this::send, 0, settings.interval().toMillis(), TimeUnit.MILLISECONDS);
      Selector s = Selector.open();
      c.register(s, SelectionKey.OP_READ);
      arrivals = s;
      Thread receiver = new Thread(() -> receiveAsTheyArrive(s), "natgate-peers-receive");
      receiver.setDaemon(true);
      receiver.start();
    } catch (IOException | IllegalArgumentException e) {
      LOG.errorf("cannot listen for peer heartbeats on %s:%d (%s): this node holds no egress IP of a peer group",
          selfIP, settings.port(), e.getMessage());
    }
    LOG.infof("peer heartbeats on %s:%d every %d ms, timeout %d ms", selfIP, settings.port(),
        settings.interval().toMillis(), settings.timeout().toMillis());
  }

  /**
   * Whether a decision within the peer timeout held an IP. The egress IPs' lifetimes are renewed only then: a holder
   * whose deciding thread stalls (a starved node) loses its addresses by the kernel's clock within the address
   * lifetime, even before it decides to release them, which bounds an overlap with a standby that took them over.
   */
  public boolean holdingDecidedLately() {
    return !holding.isEmpty() && System.nanoTime() - heldDecidedNanos <= settings.timeout().toNanos();
  }

  /** The egress IPs this node holds by the last decision. */
  public Set<String> holding() {
    return holding;
  }

  /**
   * Of the egress IPs this node holds, those a stopping member handed over (see {@link PeerView#handedOver}), with
   * that member: this node forwards it the replies it does not know.
   */
  public Map<String, String> handedOver() {
    return handedOver;
  }

  /**
   * Reads every datagram waiting, on the deciding thread right before it decides: after a pause (a loaded machine,
   * a GC) the heartbeats that arrived meanwhile count before the verdict, not after it.
   */
  private synchronized void receivePending() {
    DatagramChannel c = channel;
    if (c == null) {
      return;
    }
    if (decoder == null) {
      decoder = new PeerCodec(key);
    }
    ByteBuffer buffer = ByteBuffer.allocate(PeerCodec.MAX_LENGTH + 1);
    try {
      for (var from = c.receive(buffer); from != null; from = c.receive(buffer)) {
        PeerView.Verdict v = view.receive(buffer.array(), buffer.position(), decoder, System.nanoTime(),
            System.currentTimeMillis());
        if (v != PeerView.Verdict.ACCEPTED) {
          rejected.get(v).increment();
          LOG.debugf("dropped a peer heartbeat from %s: %s", from, v.label());
        }
        buffer.clear();
      }
    } catch (IOException e) {
      LOG.warnf("receiving peer heartbeats: %s", e.getMessage());
    }
  }

  /**
   * Reads each heartbeat the moment it arrives, so that its time is when it came, not when a decision next looked
   * (up to a tick later, which delayed every threshold by as much). Ends when the selector is closed.
   */
  private void receiveAsTheyArrive(Selector s) {
    while (s.isOpen()) {
      try {
        if (s.select() > 0) {
          s.selectedKeys().clear();
          receivePending();
        }
      } catch (IOException | ClosedSelectorException e) {
        return;
      } catch (RuntimeException e) {
        LOG.errorf(e, "receiving peer heartbeats failed");
      }
    }
  }

  private void send() {
    try {
      if (encoder == null) {
        encoder = new PeerCodec(key);
      }
      Map<String, String> to = members;
      if (to.isEmpty()) {
        return;
      }
      receivePending(); // whom this node hears is told as of now, even when the deciding thread runs late
      Set<String> claims = new TreeSet<>(holding);
      claims.addAll(inKernel.get());
      sendTo(to, encoder.encode(new PeerMessage(self, sequence.next(System.currentTimeMillis()), claims,
          view.hears(System.nanoTime()))));
    } catch (RuntimeException e) {
      LOG.errorf(e, "sending peer heartbeats failed"); // an exception would end the schedule
    }
  }

  /** One datagram to every member but this node; one that cannot be sent is only logged (the next one may). */
  private void sendTo(Map<String, String> to, byte[] data) {
    to.forEach((name, ip) -> {
      if (!name.equals(self)) {
        try {
          channel.send(ByteBuffer.wrap(data), new InetSocketAddress(ip, settings.port()));
        } catch (IOException e) {
          LOG.debugf("peer heartbeat to %s (%s) not sent: %s", name, ip, e.getMessage());
        }
      }
    });
  }

  private void decide() {
    synchronized (deciding) {
      decideNow();
      timeNextDecision();
    }
  }

  /**
   * Also decides at the next moment a member's silence crosses a threshold (the peer timeout, the takeover time) or
   * a pending release is confirmed, when that comes before the next tick: decisions are then not late by up to a tick.
   */
  private void timeNextDecision() {
    long now = System.nanoTime();
    long next = view.nextChange(now, List.of(settings.timing().peerTimeout(),
        settings.timing().takeoverAfter()));
    if (releaseSeenNanos != 0) {
      next = PeerView.earliestAfter(now, next, releaseSeenNanos + CONFIRM_RELEASE.toNanos());
    }
    if (timed != null) {
      timed.cancel(false);
      timed = null;
    }
    // The rules compare whole milliseconds (silent for more than the threshold): 1 ms after it.
    long wait = next == Long.MAX_VALUE ? Long.MAX_VALUE : next - now + TimeUnit.MILLISECONDS.toNanos(1);
    if (wait < DECIDE_EVERY.toNanos() && !timer.isShutdown()) {
      try {
        timed = timer.schedule(this::decide, wait, TimeUnit.NANOSECONDS);
      } catch (RejectedExecutionException e) {
        // stopping
      }
    }
  }

  private void decideNow() {
    try {
      Collection<? extends NodeGatewayState> parts = states.get();
      Map<String, String> all = new TreeMap<>();
      parts.stream().filter(s -> s.peers != null).flatMap(s -> s.peers.members.stream())
          .filter(m -> m.name != null && m.ip != null).forEach(m -> all.put(m.name, m.ip));
      if (!all.equals(members)) {
        members = Map.copyOf(all);
        view.members(all.keySet(), System.nanoTime());
      }
      receivePending();
      long seen = System.nanoTime();
      var peers = view.peers(seen);
      long joined = view.membersForMillis(seen);
      boolean fresh = leaseFresh.getAsBoolean();
      Set<String> before = holding;
      Set<String> decided = new TreeSet<>();
      for (NodeGatewayState part : parts) {
        decided.addAll(HoldDecision.decide(self, part, peers, before, fresh, joined, settings.timing()));
      }
      long now = System.nanoTime();
      if (decided.containsAll(before)) {
        releaseSeenNanos = 0;
      } else if (releaseSeenNanos == 0 || now - releaseSeenNanos < CONFIRM_RELEASE.toNanos()) {
        releaseSeenNanos = releaseSeenNanos == 0 ? now : releaseSeenNanos;
        decided.addAll(before); // keeps what it holds until the release is confirmed; takes what is new at once
      } else {
        releaseSeenNanos = 0; // confirmed: carried out now
      }
      Map<String, String> handed = new TreeMap<>(view.handedOver(now, HANDOVER_FORWARD));
      handed.keySet().retainAll(decided);
      boolean handoverChanged = !handed.equals(handedOver);
      if (handoverChanged) {
        handedOver = Map.copyOf(handed); // before the holding that the apply reads with it
        LOG.infof("forwarding unknown replies for %s to the member that handed them over", handed);
      }
      if (!decided.equals(before)) {
        holding = Set.copyOf(decided);
        LOG.infof("holding %s (was %s); peers heard: %s", decided, before,
            peers.entrySet().stream().filter(e -> e.getValue().direct()).map(Map.Entry::getKey).toList());
      }
      if (handoverChanged || !decided.equals(before)) {
        onChange.accept(holding);
      }
      if (!holding.isEmpty()) {
        heldDecidedNanos = System.nanoTime();
      }
    } catch (RuntimeException e) {
      LOG.errorf(e, "deciding which egress IPs to hold failed");
    }
  }

  /**
   * Stops deciding and sending, then tells the peers that this node holds nothing, hears nobody, and hands over
   * {@code handsOver} (egress IPs its kernel keeps until another node has them): the next node of each succession
   * takes the IPs over at once rather than after the takeover time, and forwards this node the replies of the
   * connections it translated. Sent a few times, datagrams being datagrams.
   */
  public void leave(Set<String> handsOver) {
    timer.shutdownNow();
    stopReceiving();
    try {
      if (!timer.awaitTermination(1, TimeUnit.SECONDS) || channel == null || key == null) {
        return;
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return;
    }
    holding = Set.of();
    PeerCodec codec = new PeerCodec(key);
    for (int i = 0; i < FAREWELLS; i++) {
      sendTo(members, codec.encode(new PeerMessage(self, sequence.next(System.currentTimeMillis()), Set.of(),
          Map.of(), handsOver)));
    }
    LOG.infof("stopping: told %d peer(s) that this node holds nothing and hands over %s",
        members.size() - (members.containsKey(self) ? 1 : 0), handsOver);
  }

  /**
   * After {@link #leave}: waits until another member claims each of {@code ips} (heard after the farewell, by
   * reading the heartbeats here: the timer is stopped), at most {@code atMost}. Returns the IPs nobody claimed.
   */
  public Set<String> awaitClaimed(Set<String> ips, Duration atMost) {
    long start = System.nanoTime();
    Set<String> unclaimed = new TreeSet<>(ips);
    while (!unclaimed.isEmpty() && System.nanoTime() - start < atMost.toNanos()) {
      receivePending();
      long sinceFarewell = (System.nanoTime() - start) / 1_000_000;
      view.peers(System.nanoTime()).forEach((member, p) -> {
        if (!member.equals(self) && p.direct() && p.silentMillis() <= sinceFarewell) {
          unclaimed.removeAll(p.holds());
        }
      });
      try {
        Thread.sleep(DECIDE_EVERY.toMillis() / 2);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        break;
      }
    }
    return unclaimed;
  }

  /** Ends the receiving thread (the socket stays open: {@link #awaitClaimed} reads it itself). */
  private void stopReceiving() {
    Selector s = arrivals;
    if (s != null) {
      try {
        s.close();
      } catch (IOException e) {
        LOG.debugf("closing the peer selector: %s", e.getMessage());
      }
    }
  }

  @Override
  public void close() {
    timer.shutdownNow();
    stopReceiving();
    if (channel != null) {
      try {
        channel.close();
      } catch (IOException e) {
        LOG.debugf("closing the peer socket: %s", e.getMessage());
      }
    }
  }
}
