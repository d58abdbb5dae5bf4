package io.natgate.connlog;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.dataplane.DataplaneSettings;
import io.natgate.dataplane.Kernel;
import io.natgate.dataplane.SnatPorts;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.jboss.logging.Logger;

/**
 * The gateway's connection log (docs/connection-log.md): a start and an end record of every connection it translates
 * for a gateway with the log on: the kernel's conntrack events (netlink, {@link EventSocket}) of connections with
 * natgate's {@link DataplaneSettings#LOG_CTMARK}.
 *
 * <p>Nothing here can hold up forwarding or the agent's apply loop: the listener thread only parses and offers to a
 * bounded queue, a writer thread formats and writes. A full queue or a failed write drops the record and counts it
 * ({@code natgate_agent_connlog_records_dropped_total}); the kernel's own overflow (the listener fell behind) is
 * counted in {@code natgate_agent_connlog_events_lost_total}.
 */
public final class ConnectionLog implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(ConnectionLog.class);
  /** Accounting (bytes, packets) and timestamps (duration) on every conntrack entry of the node's namespace. */
  static final Map<String, String> SYSCTLS = Map.of("net.netfilter.nf_conntrack_acct", "1",
      "net.netfilter.nf_conntrack_timestamp", "1");
  /** How often the kernel is asked to remove the expired connections (their end records follow). */
  static final Duration SWEEP_EVERY = Duration.ofSeconds(5);
  /** How long the listener lets events gather in the socket's buffer after taking what was there (a few hundred). */
  static final Duration GATHER = Duration.ofMillis(5);
  /** Events between checks whether the listener must stop, while it takes what the kernel queued. */
  static final int BATCH = 1024;
  /** How long a stopping listener takes what the kernel queued (a full 64 MiB buffer is read in well under that). */
  static final Duration DRAIN_FOR = Duration.ofSeconds(1);
  /** Records in a batch under a steady stream (a file's size is checked for rotation when a batch is written). */
  static final int FLUSH_EVERY = 256;

  /**
   * {@code natgate.agent.connection-log.*}.
   *
   * @param file        null: the agent's standard output
   * @param maxFileBytes rotate the file at this size
   * @param keepFiles   rotated files kept (file.1 ... file.N)
   * @param queueSize   records waiting to be written before new ones are dropped (and counted)
   * @param socketBufferBytes conntrack's netlink receive buffer: the kernel's room for a burst
   */
  public record Settings(Path file, long maxFileBytes, int keepFiles, int queueSize, int socketBufferBytes) {
    // The defaults, as text for natgate.agent.connection-log.* (NatgateConfig) and here.
    public static final String MAX_FILE_BYTES = "104857600";
    public static final String KEEP_FILES = "5";
    public static final String QUEUE_SIZE = "65536";
    public static final String SOCKET_BUFFER_BYTES = "33554432";

    /** Standard output and the defaults above. */
    public static Settings defaults() {
      return new Settings(null, Long.parseLong(MAX_FILE_BYTES), Integer.parseInt(KEEP_FILES),
          Integer.parseInt(QUEUE_SIZE), Integer.parseInt(SOCKET_BUFFER_BYTES));
    }
  }

  /**
   * Denied records written per second at most (a client retrying in a loop would otherwise flood the log); those
   * beyond are counted as dropped (reason rate_limit), and every refusal is counted in
   * natgate_agent_connections_denied_total whatever the limit.
   */
  static final int DENIED_PER_SECOND = 100;
  static final int DENIED_BURST = 200;

  private final Kernel kernel;
  private final String node;
  private final Settings settings;
  private final MeterRegistry registry;
  private final BlockingQueue<KernelReport> queue;
  private final Tracker tracker;
  private final Counter lost;
  private final Counter droppedEvents;
  private final Counter deniedLost;
  private final RateLimit deniedRecords = new RateLimit(DENIED_PER_SECOND, DENIED_BURST);
  private final Counter written;
  private final Thread writer;
  private volatile Directory directory = Directory.EMPTY;
  private volatile boolean closed;
  private Thread listener; // guarded by this
  /** A listener told to stop, still taking what the kernel queued for it (guarded by this). */
  private Thread stopping;
  private Thread deniedListener; // guarded by this
  private volatile CountDownLatch listening = new CountDownLatch(1);
  private volatile CountDownLatch deniedListening = new CountDownLatch(1);
  /** Events queued, and events written or dropped by the writer: equal when nothing is in flight. */
  private final java.util.concurrent.atomic.AtomicLong queued = new java.util.concurrent.atomic.AtomicLong();
  private volatile long handled;
  /** Destinations short of SNAT ports as of the writer's last check (PortUse#shortOfPorts), most used first. */
  private volatile List<PortUse.Use> shortOfPorts = List.of();
  private volatile Runnable onShortOfPortsChanged = () -> { };
  /** The DNS name an address was answered for, when this node knows it (io.natgate.dns), for denied records. */
  private volatile java.util.function.UnaryOperator<String> nameOf = address -> null;

  public ConnectionLog(Kernel kernel, String node, Settings settings, MeterRegistry registry) {
    this(kernel, node, settings, registry, SnatPorts.KERNEL);
  }

  /** @param snatPorts the SNAT source ports of the node's egress IPs: what port use is measured against */
  public ConnectionLog(Kernel kernel, String node, Settings settings, MeterRegistry registry, SnatPorts snatPorts) {
    this(kernel, node, settings, registry, settings.file() == null ? Sink.stdout()
        : Sink.rotatingFile(settings.file(), settings.maxFileBytes(), settings.keepFiles()), snatPorts);
  }

  ConnectionLog(Kernel kernel, String node, Settings settings, MeterRegistry registry, Sink sink) {
    this(kernel, node, settings, registry, sink, SnatPorts.KERNEL);
  }

  ConnectionLog(Kernel kernel, String node, Settings settings, MeterRegistry registry, Sink sink, SnatPorts snatPorts) {
    this.kernel = kernel;
    this.node = node;
    this.settings = settings;
    this.registry = registry;
    this.queue = new ArrayBlockingQueue<>(settings.queueSize());
    this.tracker = new Tracker(node, registry, snatPorts);
    lost = Counter.builder("natgate_agent_connlog_events_lost_total")
        .description("Times the kernel reported conntrack events lost (the listener fell behind): at least one each")
        .register(registry);
    droppedEvents = Counter.builder("natgate_agent_connlog_events_dropped_total")
        .description("Conntrack events the kernel dropped because the listener fell behind (the socket's count)")
        .register(registry);
    deniedLost = Counter.builder("natgate_agent_connlog_denied_lost_total")
        .description("Times the kernel reported refused packets lost (the listener fell behind): at least one each")
        .register(registry);
    written = Counter.builder("natgate_agent_connlog_records_written_total").description("Records written")
        .register(registry);
    registry.gauge("natgate_agent_connlog_queue_depth", queue, BlockingQueue::size);
    writer = new Thread(() -> write(sink), "natgate-connlog-writer");
    writer.setDaemon(true);
    writer.start();
  }

  /**
   * The node's states as the agent is about to apply them: starts the listener when some gateway logs (and waits up
   * to 2 s for it to listen, so that the connections the apply starts marking are seen), stops it when none does.
   */
  public void update(Map<String, ? extends NodeGatewayState> byGateway) {
    Directory d = Directory.of(byGateway);
    directory = d;
    List<CountDownLatch> ready = new java.util.ArrayList<>();
    synchronized (this) {
      if (d.logging() && listener == null && !closed) {
        awaitStopped(); // two listeners at once would write some records twice
        listening = new CountDownLatch(1);
        ready.add(listening);
        listener = new Thread(this::listen, "natgate-connlog-listener");
        listener.setDaemon(true);
        listener.start();
      } else if (!d.logging() && listener != null) {
        listener.interrupt();
        stopping = listener;
        listener = null;
      }
      if (d.denying() && deniedListener == null && !closed) {
        deniedListening = new CountDownLatch(1);
        ready.add(deniedListening);
        deniedListener = new Thread(this::listenDenied, "natgate-connlog-denied");
        deniedListener.setDaemon(true);
        deniedListener.start();
      } else if (!d.denying() && deniedListener != null) {
        deniedListener.interrupt();
        deniedListener = null;
      }
    }
    for (CountDownLatch latch : ready) {
      try {
        if (!latch.await(2, TimeUnit.SECONDS)) {
          LOG.warn("connection log: a listener is not listening after 2 s; the first connections may have no record");
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  /**
   * Listens until told to stop, opening the socket again a second after a failure. When told to stop it first takes
   * what the kernel queued already: closing the socket would drop those events, silently.
   */
  private void listen() {
    Thread me = Thread.currentThread();
    long lastWarning = 0;
    while (!closed && !me.isInterrupted()) {
      try {
        kernel.writeSysctls(SYSCTLS);
        try (EventSocket socket = inNamespace(netns -> new EventSocket(netns, settings.socketBufferBytes(),
            DataplaneSettings.LOG_CTMARK))) {
          listening.countDown();
          long nextSweep = System.nanoTime();
          long drops = 0;
          while (!closed && !me.isInterrupted()) {
            if (System.nanoTime() - nextSweep > 0) {
              nextSweep = System.nanoTime() + SWEEP_EVERY.toNanos();
              socket.sweep(DataplaneSettings.LOG_CTMARK);
            }
            // One event per datagram: waking up for each costs more than handling it. Once one came, take all
            // that are queued, then let the next ones gather in the socket's buffer for a moment.
            int taken = 0;
            for (EventSocket.Received r = socket.receive(); r.datagram() != null || r.overflowed();
                r = socket.receiveQueued()) {
              taken++;
              if (r.overflowed()) {
                lost.increment();
                drops = countDrops(socket, drops);
                if (System.nanoTime() - lastWarning > Duration.ofSeconds(10).toNanos()) {
                  lastWarning = System.nanoTime();
                  LOG.warn("the kernel dropped conntrack events: the connection log fell behind (see natgate_agent_"
                      + "connlog_events_dropped_total; natgate.agent.connection-log.socket-buffer-bytes)");
                }
              } else {
                accept(r.datagram(), Instant.now());
              }
              if (taken % BATCH == 0 && (closed || me.isInterrupted() || System.nanoTime() - nextSweep > 0)) {
                break; // to stop, or to sweep: under a steady stream the queue may never run dry
              }
            }
            if (taken > 0 && !closed && !me.isInterrupted()) {
              try {
                Thread.sleep(GATHER.toMillis());
              } catch (InterruptedException e) {
                me.interrupt(); // the drain below still runs
              }
            }
          }
          long until = System.nanoTime() + DRAIN_FOR.toNanos();
          for (EventSocket.Received r = socket.receiveQueued(); (r.datagram() != null || r.overflowed())
              && System.nanoTime() < until; r = socket.receiveQueued()) {
            if (r.datagram() != null) {
              accept(r.datagram(), Instant.now());
            }
          }
          countDrops(socket, drops);
        }
      } catch (RuntimeException e) {
        LOG.errorf("connection log listener: %s; retrying in 1 s", e.getMessage());
        try {
          Thread.sleep(1000);
        } catch (InterruptedException ie) {
          break;
        }
      }
    }
  }

  /**
   * Listens to the allow lists' refusals (their NFLOG group) until told to stop, opening the socket again a second
   * after a failure. Refusals are few (and rate-limited in the log): one receive per datagram is enough here.
   */
  private void listenDenied() {
    Thread me = Thread.currentThread();
    long lastWarning = 0;
    while (!closed && !me.isInterrupted()) {
      try (DeniedSocket socket = inNamespace(netns -> new DeniedSocket(netns, io.natgate.Defaults.DENIED_NFLOG_GROUP,
          settings.socketBufferBytes()))) {
        deniedListening.countDown();
        while (!closed && !me.isInterrupted()) {
          EventSocket.Received r = socket.receive();
          if (r.overflowed()) {
            deniedLost.increment();
            if (System.nanoTime() - lastWarning > Duration.ofSeconds(10).toNanos()) {
              lastWarning = System.nanoTime();
              LOG.warn("the kernel dropped refused packets the connection log had not read (see "
                  + "natgate_agent_connlog_denied_lost_total; natgate.agent.connection-log.socket-buffer-bytes)");
            }
          } else if (r.datagram() != null) {
            acceptDenied(r.datagram(), Instant.now());
          }
        }
      } catch (RuntimeException e) {
        LOG.errorf("connection log's denied listener: %s; retrying in 1 s", e.getMessage());
        try {
          Thread.sleep(1000);
        } catch (InterruptedException ie) {
          break;
        }
      }
    }
  }

  /** Adds the socket's drops since {@code counted} to the dropped events; the socket's count so far. */
  private long countDrops(EventSocket socket, long counted) {
    long now = socket.drops();
    droppedEvents.increment(now - counted);
    return now;
  }

  /** A socket opened in the kernel's namespace: where a helper process started through it runs (null: our own). */
  private <T> T inNamespace(java.util.function.Function<String, T> open) {
    if (kernel.local()) {
      return open.apply(null);
    }
    // It says so once it runs the command, that is, once it is in the namespace: before, its /proc entry would
    // still show where it came from (ip netns exec enters the namespace, then executes the command).
    Process helper = kernel.listen("sh", "-c", "echo entered; exec sleep 30");
    try (var out = new java.io.BufferedReader(new java.io.InputStreamReader(helper.getInputStream(),
        java.nio.charset.StandardCharsets.US_ASCII))) {
      if (!"entered".equals(out.readLine())) {
        throw new IllegalStateException("could not enter the node's network namespace");
      }
      return open.apply("/proc/" + helper.pid() + "/ns/net");
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    } finally {
      helper.destroy();
    }
  }

  /** One datagram of events: those of connections natgate marked are queued for the writer, or counted as dropped. */
  void accept(ByteBuffer datagram, Instant received) {
    List<ConntrackEvent> events;
    try {
      events = ConntrackEvent.parse(datagram, received);
    } catch (IllegalArgumentException | IndexOutOfBoundsException ex) {
      LOG.warnf("ignoring a conntrack message: %s", ex.getMessage());
      return;
    }
    for (ConntrackEvent e : events) {
      if ((e.mark() & Integer.toUnsignedLong(DataplaneSettings.LOG_CTMARK)) == 0) {
        continue; // not a connection natgate translates for a gateway with the log on (the socket's filter drops them)
      }
      if (queue.offer(e)) {
        queued.incrementAndGet();
      } else {
        dropped(e.egressIP(), "queue_full");
      }
    }
  }
  /**
   * One datagram of refused packets: each counted in natgate_agent_connections_denied_total, and queued for a denied
   * record within {@link #DENIED_PER_SECOND} (beyond: counted as dropped, reason rate_limit).
   */
  void acceptDenied(ByteBuffer datagram, Instant received) {
    List<DeniedPacket> packets;
    try {
      packets = DeniedPacket.parse(datagram, received);
    } catch (IllegalArgumentException | IndexOutOfBoundsException ex) {
      LOG.warnf("ignoring an NFLOG message: %s", ex.getMessage());
      return;
    }
    for (DeniedPacket p : packets) {
      String gateway = directory.gatewayByEgressIP().get(p.egressIP());
      registry.counter("natgate_agent_connections_denied_total", "gateway", gateway == null ? "" : gateway,
          "egress_ip", p.egressIP()).increment();
      if (!deniedRecords.take(System.nanoTime())) {
        dropped(p.egressIP(), "rate_limit");
      } else if (queue.offer(p)) {
        queued.incrementAndGet();
      } else {
        dropped(p.egressIP(), "queue_full");
      }
    }
  }


  /** Sets what the records name without starting the listener (tests feed {@link #accept}). */
  void directory(Directory d) {
    directory = d;
  }

  private void dropped(String egressIP, String reason) {
    String gateway = directory.gatewayByEgressIP().get(egressIP);
    registry.counter("natgate_agent_connlog_records_dropped_total", "gateway", gateway == null ? "" : gateway,
        "egress_ip", egressIP, "reason", reason).increment();
  }

  /**
   * The writer thread: formats, and writes in batches (one write per batch: the sink's cost per write is more than
   * per byte), flushes when the queue runs dry, checks port use every second.
   */
  private void write(Sink sink) {
    long nextCheck = 0;
    Map<String, Integer> unflushed = new java.util.HashMap<>(); // egress IP -> records in the batch
    StringBuilder lines = new StringBuilder(FLUSH_EVERY * 512);
    long taken = 0;
    try (sink) {
      while (!closed || !queue.isEmpty()) {
        KernelReport e = queue.poll(200, TimeUnit.MILLISECONDS);
        if (e != null) {
          taken++;
          ConnectionRecord r = e instanceof ConntrackEvent c ? tracker.record(c, directory) : denied((DeniedPacket) e);
          r.json(lines).append('\n');
          unflushed.merge(r.egressIP(), 1, Integer::sum);
        }
        if (e == null || queue.isEmpty() || taken % FLUSH_EVERY == 0) {
          boolean ok = lines.isEmpty() || sink.write(lines.toString());
          ok = sink.flush() && ok;
          lines.setLength(0);
          for (var batch : unflushed.entrySet()) {
            if (ok) {
              written.increment(batch.getValue());
            } else {
              for (int i = 0; i < batch.getValue(); i++) {
                dropped(batch.getKey(), "write_error");
              }
            }
          }
          unflushed.clear();
          handled = taken;
        }
        if (System.nanoTime() - nextCheck > 0) {
          nextCheck = System.nanoTime() + Duration.ofSeconds(1).toNanos();
          checkPortUse();
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private ConnectionRecord denied(DeniedPacket p) {
    Directory d = directory;
    return ConnectionRecord.denied(p, node, d.gatewayByEgressIP().get(p.egressIP()), d.podByIP().get(p.srcIP()),
        nameOf.apply(p.dstIP()));
  }

  private void checkPortUse() {
    tracker.refreshPortUse();
    List<PortUse.Use> before = shortOfPorts;
    Set<PortUse.Destination> reported = new HashSet<>();
    before.forEach(u -> reported.add(u.destination()));
    List<PortUse.Use> now = tracker.portUse().shortOfPorts(reported);
    for (PortUse.Use use : now) {
      if (!reported.contains(use.destination())) {
        LOG.warnf("SNAT ports of egress IP %s to %s are %.0f%% used (%d connections): new connections to it will "
            + "fail when none is left", use.destination().egressIP(), use.destination(), 100 * use.ratio(),
            use.connections());
      }
    }
    if (!reports(now).equals(reports(before))) {
      shortOfPorts = now;
      onShortOfPortsChanged.run();
    }
  }

  /** What the agent reports of {@code uses}: destination and stepped percent (the rest changes per connection). */
  private static List<String> reports(List<PortUse.Use> uses) {
    return uses.stream().map(u -> u.destination().egressIP() + " " + u.destination() + " " + u.steppedPercent())
        .toList();
  }

  /** Destinations short of SNAT ports (PortUse#shortOfPorts), most used first, as of the last check. */
  public List<PortUse.Use> shortOfPorts() {
    return shortOfPorts;
  }

  /** Where denied records find the DNS name of their destination (the DNS path's answers); none by default. */
  public void namesFrom(java.util.function.UnaryOperator<String> nameOfAddress) {
    nameOf = nameOfAddress;
  }

  /** Called on the writer thread when {@link #shortOfPorts()} changes in a destination or its stepped percent. */
  public void onShortOfPortsChanged(Runnable listener) {
    onShortOfPortsChanged = listener;
  }

  /** Waits until every event queued so far is written (or counted as dropped); false on timeout. */
  public boolean drain(Duration timeout) throws InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (handled < queued.get()) {
      if (System.nanoTime() > deadline) {
        return false;
      }
      Thread.sleep(10);
    }
    return true;
  }

  /** Connections seen starting and not yet ending (the writer's view; for tests). */
  public int active() {
    return tracker.active();
  }

  /** Waits for a stopping listener to have queued what the kernel held for it (bounded: receive's timeout + drain). */
  private synchronized void awaitStopped() {
    if (stopping != null) {
      try {
        stopping.join(DRAIN_FOR.toMillis() + 1000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      stopping = null;
    }
  }

  @Override
  public void close() {
    synchronized (this) {
      closed = true;
      if (listener != null) {
        listener.interrupt();
        stopping = listener;
        listener = null;
      }
      awaitStopped(); // its last events go to the writer, which writes what is queued before it ends
      if (deniedListener != null) {
        deniedListener.interrupt();
        deniedListener = null;
      }
    }
    try {
      writer.join(3000); // it writes what is queued first
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    writer.interrupt();
    for (KernelReport e = queue.poll(); e != null; e = queue.poll()) {
      dropped(e.egressIP(), "shutdown"); // what the writer did not get to
    }
  }
}
