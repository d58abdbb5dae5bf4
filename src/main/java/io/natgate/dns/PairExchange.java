package io.natgate.dns;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.dataplane.DestinationSets;
import io.natgate.dataplane.Kernel;
import io.natgate.peers.PeerCodec;
import io.natgate.peers.PeerView;
import io.natgate.peers.SequenceClock;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.DatagramChannel;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.jboss.logging.Logger;

/**
 * Carries pairs from the node that answered a pod to the node that checks the pod's connections, and puts them into
 * that node's sets. One UDP socket per agent (every address, {@code port}): pairs out, acknowledgements back, pairs
 * in. Received pairs pass the {@link PairGuard}, wait in a queue, and go into the kernel together (one
 * {@code ipset restore} for whatever arrived meanwhile); each message is acknowledged once the kernel has it, then
 * sent on to the other nodes of its egress IP's succession, so that a standby taking over has them too.
 */
final class PairExchange implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(PairExchange.class);
  /** An unacknowledged message is sent again (with a new sequence number) this often until its answer is released. */
  static final Duration RESEND = Duration.ofMillis(150);

  /** Pairs to put into the kernel: from another node (acknowledged to {@code from}), or this node's own. */
  private record Job(PairMessage.Pairs pairs, SocketAddress from, CompletableFuture<Void> done) {
  }

  private final String self;
  private final int port;
  private final Kernel kernel;
  private final NodeNamespace namespace;
  private final Supplier<Map<String, ? extends NodeGatewayState>> states;
  private final PairCodec encoder;
  private final PairCodec decoder;
  private final PairGuard guard = new PairGuard();
  private final SequenceClock sequence = new SequenceClock();
  private final Map<Long, CompletableFuture<Void>> pending = new ConcurrentHashMap<>();
  private final BlockingQueue<Job> jobs = new LinkedBlockingQueue<>();
  /** Set name to type; forgotten when an apply fails (the gateway role may have made it anew). */
  private final Map<String, String> types = new ConcurrentHashMap<>();
  private final ScheduledExecutorService resender;
  private final Map<PeerView.Verdict, Counter> received = new EnumMap<>(PeerView.Verdict.class);
  private final Counter added;
  private final Counter applyErrors;
  private volatile DatagramChannel channel;
  private final List<Thread> threads = new ArrayList<>();
  /** The names of the pairs this node's sets were given (a denied record names them). */
  private final AnsweredNames answered;

  PairExchange(String self, int port, byte[] key, Kernel kernel, NodeNamespace namespace,
      Supplier<Map<String, ? extends NodeGatewayState>> states, MeterRegistry metrics, AnsweredNames answered) {
    this.self = self;
    this.answered = answered;
    this.port = port;
    this.kernel = kernel;
    this.namespace = namespace;
    this.states = states;
    this.encoder = new PairCodec(key);
    this.decoder = new PairCodec(key);
    this.resender = Executors.newSingleThreadScheduledExecutor(namespace.threads("natgate-dns-resend"));
    for (PeerView.Verdict v : PeerView.Verdict.values()) {
      if (v != PeerView.Verdict.ACCEPTED) {
        received.put(v, Counter.builder("natgate_agent_dns_pairs_rejected_total")
            .description("Pair messages from other nodes refused (mac: forged or another key; stranger: pods or a "
                + "name this node does not check for that gateway; replay: an old sequence number)")
            .tag("reason", v.label()).register(metrics));
      }
    }
    added = Counter.builder("natgate_agent_dns_pairs_added_total")
        .description("(pod, address) pairs put into this node's sets").register(metrics);
    applyErrors = Counter.builder("natgate_agent_dns_pairs_errors_total")
        .description("Pair messages the kernel did not take (a set missing, ipset failed)").register(metrics);
  }

  /** Opens the socket in the node's namespace, then receives and applies in the background. */
  PairExchange start() {
    CompletableFuture<DatagramChannel> opened = new CompletableFuture<>();
    Thread receiver = namespace.threads("natgate-dns-pairs").newThread(() -> {
      try {
        channel = DatagramChannel.open(StandardProtocolFamily.INET).bind(new InetSocketAddress("0.0.0.0", port));
        opened.complete(channel);
      } catch (IOException | RuntimeException e) {
        opened.completeExceptionally(e);
        return;
      }
      receive();
    });
    receiver.start();
    threads.add(receiver);
    opened.join();
    Thread applier = namespace.threads("natgate-dns-apply").newThread(this::applyLoop);
    applier.start();
    threads.add(applier);
    return this;
  }

  /**
   * Makes the gateway allow the pairs: into this node's own sets when it SNATs the pod ({@code local}), otherwise
   * sent to whichever node holds {@code egressIP}. Completes once they are in that node's kernel (every message).
   */
  CompletableFuture<Void> allow(String gateway, String fqdn, List<PairMessage.Pair> pairs, String egressIP,
      boolean local) {
    List<CompletableFuture<Void>> parts = new ArrayList<>();
    for (int i = 0; i < pairs.size(); i += PairCodec.MAX_PAIRS) {
      List<PairMessage.Pair> chunk = List.copyOf(pairs.subList(i, Math.min(pairs.size(), i + PairCodec.MAX_PAIRS)));
      var m = new PairMessage.Pairs(self, 0, false, gateway, fqdn, chunk);
      CompletableFuture<Void> done = new CompletableFuture<>();
      if (local) {
        jobs.add(new Job(m, null, done));
      } else {
        sendUntilAcked(m, new InetSocketAddress(egressIP, port), done);
      }
      parts.add(done);
    }
    CompletableFuture<Void> all = CompletableFuture.allOf(parts.toArray(CompletableFuture[]::new));
    all.whenComplete((v, e) -> parts.forEach(p -> p.cancel(false))); // cancelled by the caller: stop resending
    return all;
  }

  private void sendUntilAcked(PairMessage.Pairs m, InetSocketAddress to, CompletableFuture<Void> done) {
    if (done.isDone()) {
      return;
    }
    long seq = send(m, to);
    if (seq != 0) {
      pending.put(seq, done);
      done.whenComplete((v, e) -> pending.remove(seq));
    }
    resender.schedule(() -> sendUntilAcked(m, to, done), RESEND.toMillis(), TimeUnit.MILLISECONDS);
  }

  /** Sends with the next sequence number (in order: a receiver refuses one below the last it took); 0 if not sent. */
  private long send(PairMessage m, SocketAddress to) {
    synchronized (encoder) {
      long seq = sequence.next(System.currentTimeMillis());
      PairMessage numbered = m instanceof PairMessage.Pairs p
          ? new PairMessage.Pairs(self, seq, p.relayed(), p.gateway(), p.fqdn(), p.pairs())
          : new PairMessage.Ack(self, seq, ((PairMessage.Ack) m).acked());
      try {
        channel.send(ByteBuffer.wrap(encoder.encode(numbered)), to);
        return seq;
      } catch (IOException e) {
        LOG.debugf("could not send DNS pairs to %s: %s", to, e.getMessage());
        return 0;
      }
    }
  }

  private void receive() {
    ByteBuffer buffer = ByteBuffer.allocate(PeerCodec.MAX_LENGTH + 2048);
    while (!Thread.currentThread().isInterrupted()) {
      SocketAddress from;
      try {
        buffer.clear();
        from = channel.receive(buffer);
      } catch (ClosedChannelException e) {
        return;
      } catch (IOException e) {
        LOG.warnf("DNS pairs socket: %s", e.getMessage());
        continue;
      }
      Optional<PairMessage> decoded = decoder.decode(buffer.array(), buffer.position());
      if (decoded.isEmpty()) {
        received.get(PeerView.Verdict.MAC).increment();
      } else if (decoded.get() instanceof PairMessage.Ack a) {
        CompletableFuture<Void> done = pending.remove(a.acked());
        if (done != null) {
          done.complete(null);
        }
      } else if (decoded.get() instanceof PairMessage.Pairs p) {
        Map<String, ? extends NodeGatewayState> now = states.get();
        PeerView.Verdict v = guard.check(p, now::get, System.currentTimeMillis());
        if (v == PeerView.Verdict.ACCEPTED) {
          jobs.add(new Job(p, from, null));
        } else {
          received.get(v).increment();
          LOG.debugf("refused DNS pairs from %s (%s): %s", p.sender(), from, v.label());
        }
      }
    }
  }

  private void applyLoop() {
    try {
      while (!Thread.currentThread().isInterrupted()) {
        List<Job> batch = new ArrayList<>();
        batch.add(jobs.take());
        jobs.drainTo(batch);
        apply(batch);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** One ipset run for the batch; when it fails, one per message, so that a missing set fails only its own. */
  private void apply(List<Job> batch) {
    try {
      kernel.run(restore(batch), "ipset", "-exist", "restore");
      batch.forEach(this::applied);
    } catch (Kernel.KernelException | IllegalArgumentException e) {
      types.clear();
      if (batch.size() == 1) {
        applyErrors.increment();
        LOG.warnf("DNS pairs for %s of gateway %s not added: %s", batch.get(0).pairs().fqdn(),
            batch.get(0).pairs().gateway(), e.getMessage());
        if (batch.get(0).done() != null) {
          batch.get(0).done().completeExceptionally(e);
        }
        return;
      }
      batch.forEach(job -> apply(List.of(job)));
    }
  }

  /** ipset restore lines for the batch, each pair in the form its set's type takes. */
  String restore(List<Job> batch) {
    var text = new StringBuilder();
    Map<String, ? extends NodeGatewayState> now = states.get();
    for (Job job : batch) {
      String set = DestinationSets.fqdn(job.pairs().gateway(), job.pairs().fqdn());
      String type = typeOf(set);
      var ports = SetMembers.portsOf(now.get(job.pairs().gateway()), job.pairs().fqdn());
      for (PairMessage.Pair p : job.pairs().pairs()) {
        for (String member : SetMembers.of(type, p.pod(), p.address(), ports)) {
          text.append("add ").append(set).append(' ').append(member).append(" timeout ").append(p.timeoutSeconds())
              .append('\n');
        }
      }
    }
    return text.toString();
  }

  /** The set's type, as the kernel says (asked once per set; a set that is missing fails its pairs). */
  private String typeOf(String set) {
    String known = types.get(set);
    if (known != null) {
      return known;
    }
    for (String line : kernel.run(null, "ipset", "list", "-t", set).split("\n")) {
      if (line.startsWith("Type: ")) {
        String type = line.substring("Type: ".length()).trim();
        types.put(set, type);
        return type;
      }
    }
    throw new Kernel.KernelException("ipset list -t " + set + ": no type");
  }

  /** Acknowledges (or completes a local job), then relays to the rest of the succession. */
  private void applied(Job job) {
    added.increment(job.pairs().pairs().size());
    job.pairs().pairs().forEach(p -> answered.answered(job.pairs().fqdn(), p.address(), p.timeoutSeconds()));
    if (job.from() != null) {
      send(new PairMessage.Ack(self, 0, job.pairs().seq()), job.from());
    } else {
      job.done().complete(null);
    }
    if (!job.pairs().relayed()) {
      NodeGatewayState s = states.get().get(job.pairs().gateway());
      var relayed = new PairMessage.Pairs(self, 0, true, job.pairs().gateway(), job.pairs().fqdn(), job.pairs().pairs());
      DnsRoutes.relayTo(s, self, job.pairs().pairs().stream().map(PairMessage.Pair::pod).toList())
          .forEach(ip -> send(relayed, new InetSocketAddress(ip, port)));
    }
  }

  @Override
  public void close() {
    threads.forEach(Thread::interrupt);
    resender.shutdownNow();
    try {
      if (channel != null) {
        channel.close();
      }
    } catch (IOException e) {
      // closing anyway
    }
    pending.values().forEach(f -> f.cancel(false));
  }
}
