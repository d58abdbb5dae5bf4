package io.natgate.dns;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.dataplane.DestinationSets;
import io.natgate.dataplane.Kernel;
import io.natgate.peers.NodeChannel;
import io.natgate.peers.NodeNamespace;
import io.natgate.peers.PeerCodec;
import io.natgate.peers.PeerView;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
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
  private final Supplier<Map<String, ? extends NodeGatewayState>> states;
  private final PairCodec encoder;
  private final PairCodec decoder;
  private final PairGuard guard = new PairGuard();
  private final BlockingQueue<Job> jobs = new LinkedBlockingQueue<>();
  /** Set name to type; forgotten when an apply fails (the gateway role may have made it anew). */
  private final Map<String, String> types = new ConcurrentHashMap<>();
  private final Map<PeerView.Verdict, Counter> received = new EnumMap<>(PeerView.Verdict.class);
  private final Counter added;
  private final Counter applyErrors;
  private final NodeChannel channel;
  private final List<Thread> threads = new ArrayList<>();
  /** The names of the pairs this node's sets were given (a denied record names them). */
  private final AnsweredNames answered;

  PairExchange(String self, int port, byte[] key, Kernel kernel, NodeNamespace namespace,
      Supplier<Map<String, ? extends NodeGatewayState>> states, MeterRegistry metrics, AnsweredNames answered) {
    this.self = self;
    this.answered = answered;
    this.port = port;
    this.kernel = kernel;
    this.states = states;
    this.encoder = new PairCodec(key);
    this.decoder = new PairCodec(key);
    this.channel = new NodeChannel("natgate-dns-pairs", namespace, RESEND);
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
    channel.start(port, PeerCodec.MAX_LENGTH + 2048, this::receive);
    Thread applier = channel.threads("natgate-dns-apply").newThread(this::applyLoop);
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
    channel.sendUntilAcked(seq -> encode(m, seq), to, done);
  }

  private void send(PairMessage m, SocketAddress to) {
    channel.send(seq -> encode(m, seq), to);
  }

  /** Numbered, then encoded (under the channel's lock: one encoder). */
  private byte[] encode(PairMessage m, long seq) {
    PairMessage numbered = m instanceof PairMessage.Pairs p
        ? new PairMessage.Pairs(self, seq, p.relayed(), p.gateway(), p.fqdn(), p.pairs())
        : new PairMessage.Ack(self, seq, ((PairMessage.Ack) m).acked());
    return encoder.encode(numbered);
  }

  private void receive(ByteBuffer buffer, SocketAddress from) {
    Optional<PairMessage> decoded = decoder.decode(buffer.array(), buffer.position());
    if (decoded.isEmpty()) {
      received.get(PeerView.Verdict.MAC).increment();
    } else if (decoded.get() instanceof PairMessage.Ack a) {
      channel.acked(a.acked());
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
    channel.close();
  }
}
