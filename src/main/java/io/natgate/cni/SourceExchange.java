package io.natgate.cni;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.dataplane.Kernel;
import io.natgate.peers.NodeChannel;
import io.natgate.peers.NodeNamespace;
import io.natgate.peers.Signed;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.function.Supplier;
import org.jboss.logging.Logger;

/**
 * natgate-cni between nodes: a director node tells the node holding an egress IP (by sending to that IP) that a new
 * pod's traffic comes through the tunnel, and waits for the acknowledgement; the gateway node checks the message
 * ({@link EarlySources#receive}), applies its state with the source added, acknowledges, and relays it to the other
 * nodes of the egress IP's succession, so that a standby taking over SNATs the pod too. One UDP socket per agent
 * (every address of the node, {@code port}); messages are signed with the peer key like the peer heartbeats.
 */
public final class SourceExchange implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(SourceExchange.class);
  /** An unacknowledged message is sent again this often (a new sequence number each time) until answered. */
  static final long RESEND_MS = 100;
  private static final long APPLY_WITHIN_S = 8;

  private record Job(SourceMessage message, SocketAddress from) {
  }

  private final String self;
  private final int port;
  private final Signed sealer;
  private final Signed opener;
  private final NodeNamespace namespace;
  private final EarlySources learned;
  private final Function<String, NodeGatewayState> parts;
  private final Supplier<CompletableFuture<Void>> applyNow;
  private final BlockingQueue<Job> jobs = new LinkedBlockingQueue<>();
  private final NodeChannel channel;
  private final Map<EarlySources.Verdict, Counter> refused = new EnumMap<>(EarlySources.Verdict.class);
  private final Counter refusedMac;
  private Thread applier;

  /**
   * @param parts    this node's part in a gateway as last rendered (with its standby SNATs), by gateway name
   * @param applyNow applies the node's state now (with {@code learned}); completes once the kernel has it
   */
  public SourceExchange(String self, int port, byte[] key, Kernel kernel, MeterRegistry metrics,
      EarlySources learned, Function<String, NodeGatewayState> parts, Supplier<CompletableFuture<Void>> applyNow) {
    this.self = self;
    this.port = port;
    this.sealer = new Signed(key);
    this.opener = new Signed(key);
    this.namespace = new NodeNamespace(kernel);
    this.learned = learned;
    this.parts = parts;
    this.applyNow = applyNow;
    this.channel = new NodeChannel("natgate-cni-sources", namespace, Duration.ofMillis(RESEND_MS));
    String description = "natgate-cni sources from other nodes refused (mac: forged or another key; replay; stranger: "
        + "an egress IP this node neither holds nor stands by for; outside: not a pod network address; full)";
    refusedMac = Counter.builder("natgate_agent_cni_sources_refused_total").description(description)
        .tag("reason", "mac").register(metrics);
    for (EarlySources.Verdict v : EarlySources.Verdict.values()) {
      if (v != EarlySources.Verdict.ACCEPTED) {
        refused.put(v, Counter.builder("natgate_agent_cni_sources_refused_total").description(description)
            .tag("reason", v.label()).register(metrics));
      }
    }
  }

  /** Opens the socket in the node's namespace, then receives and applies in the background. */
  public SourceExchange start() {
    try {
      channel.start(port, 2048, this::receive);
    } catch (RuntimeException e) {
      close();
      throw e;
    }
    applier = channel.threads("natgate-cni-apply").newThread(this::applyLoop);
    applier.start();
    return this;
  }

  /**
   * Tells the node holding {@code egressIP} to add (or remove) the pod; completes once that node's kernel has it.
   * Sent again until then or until the caller cancels the future.
   */
  public CompletableFuture<Void> tell(SourceMessage.Kind kind, String gateway, String egressIP, String pod) {
    CompletableFuture<Void> done = new CompletableFuture<>();
    SourceMessage m = SourceMessage.change(kind, self, gateway, egressIP, pod);
    channel.sendUntilAcked(seq -> m.numbered(seq).encode(sealer), new InetSocketAddress(egressIP, port), done);
    return done;
  }

  private void send(SourceMessage m, SocketAddress to) {
    channel.send(seq -> m.numbered(seq).encode(sealer), to);
  }

  private void receive(ByteBuffer buffer, SocketAddress from) {
    var decoded = SourceMessage.decode(opener, buffer.array(), buffer.position());
    if (decoded.isEmpty()) {
      refusedMac.increment();
      return;
    }
    SourceMessage m = decoded.get();
    if (m.kind() == SourceMessage.Kind.ACK) {
      channel.acked(m.acked());
      return;
    }
    EarlySources.Verdict v = learned.receive(m, parts.apply(m.gateway()), System.currentTimeMillis());
    if (v == EarlySources.Verdict.ACCEPTED) {
      LOG.debugf("natgate-cni source %s for %s from %s", m.pod(), m.egressIP(), m.sender());
      jobs.add(new Job(m, from));
    } else {
      refused.get(v).increment();
      LOG.debugf("refused natgate-cni source %s from %s (%s): %s", m.pod(), m.sender(), from, v.label());
    }
  }

  /** One apply for whatever arrived meanwhile, then the acknowledgements and relays. */
  private void applyLoop() {
    try {
      while (!Thread.currentThread().isInterrupted()) {
        List<Job> batch = new ArrayList<>();
        batch.add(jobs.take());
        jobs.drainTo(batch);
        try {
          applyNow.get().get(APPLY_WITHIN_S, TimeUnit.SECONDS);
        } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
          LOG.warnf("natgate-cni sources not applied (their directors time out and the operator's state decides): %s",
              e.getMessage());
          continue;
        }
        // Learned sources leave the kernel when they expire: apply again then.
        channel.timer().schedule(() -> applyNow.get(), learned.ttlMillis() + 1000, TimeUnit.MILLISECONDS);
        batch.forEach(this::applied);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private void applied(Job job) {
    SourceMessage m = job.message();
    if (m.relayed()) {
      return;
    }
    send(SourceMessage.ack(self, m.seq()), job.from());
    SourceMessage relayed = m.relayedBy(self);
    EarlySources.relayTo(parts.apply(m.gateway()), self, m.egressIP())
        .forEach(ip -> send(relayed, new InetSocketAddress(ip, port)));
  }

  @Override
  public void close() {
    if (applier != null) {
      applier.interrupt();
    }
    channel.close();
    namespace.close();
  }
}
