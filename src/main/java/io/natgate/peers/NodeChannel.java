package io.natgate.peers;

import io.natgate.peers.SequenceClock;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.DatagramChannel;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.BiConsumer;
import java.util.function.LongFunction;
import org.jboss.logging.Logger;

/**
 * One UDP socket of an agent for messages to other agents (every address of the node, in its network namespace):
 * numbers each message it sends ({@link SequenceClock}, in order), sends a message again until the receiver
 * acknowledges its number or the caller gives up, and hands every datagram it receives to one consumer. Used by the
 * DNS path's pairs and natgate-cni's sources; what the bytes mean (and their MAC) is theirs.
 */
public final class NodeChannel implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(NodeChannel.class);

  private final String name;
  private final NodeNamespace namespace;
  private final Duration resend;
  private final SequenceClock sequence = new SequenceClock();
  private final Map<Long, CompletableFuture<Void>> pending = new ConcurrentHashMap<>();
  private final ScheduledExecutorService timer;
  private volatile DatagramChannel channel;
  private Thread receiver;

  /** @param name names its threads and its log lines */
  public NodeChannel(String name, NodeNamespace namespace, Duration resend) {
    this.name = name;
    this.namespace = namespace;
    this.resend = resend;
    this.timer = Executors.newSingleThreadScheduledExecutor(namespace.threads(name + "-resend"));
  }

  /** Binds {@code port} in the node's namespace (fails when it cannot), then receives in the background. */
  public NodeChannel start(int port, int maxLength, BiConsumer<ByteBuffer, SocketAddress> received) {
    CompletableFuture<Void> opened = new CompletableFuture<>();
    receiver = namespace.threads(name).newThread(() -> {
      try {
        channel = DatagramChannel.open(StandardProtocolFamily.INET).bind(new InetSocketAddress("0.0.0.0", port));
        opened.complete(null);
      } catch (IOException | RuntimeException e) {
        opened.completeExceptionally(e);
        return;
      }
      receive(maxLength, received);
    });
    receiver.start();
    opened.join();
    return this;
  }

  /** Threads in the node's namespace, for the user's own work. */
  public java.util.concurrent.ThreadFactory threads(String threadName) {
    return namespace.threads(threadName);
  }

  /** The scheduler of the resends, for the user's own timed work (short tasks only). */
  public ScheduledExecutorService timer() {
    return timer;
  }

  /**
   * Sends the message (encoded with its sequence number) until {@link #acked} with one of the numbers it was sent
   * with, or until {@code done} completes otherwise (the caller gave up); then stops.
   */
  public void sendUntilAcked(LongFunction<byte[]> encode, SocketAddress to, CompletableFuture<Void> done) {
    if (done.isDone()) {
      return;
    }
    long seq = send(encode, to);
    if (seq != 0) {
      pending.put(seq, done);
      done.whenComplete((v, e) -> pending.remove(seq));
    }
    timer.schedule(() -> sendUntilAcked(encode, to, done), resend.toMillis(), TimeUnit.MILLISECONDS);
  }

  /** The receiver has message {@code seq}: completes its sender's wait. */
  public void acked(long seq) {
    CompletableFuture<Void> done = pending.remove(seq);
    if (done != null) {
      done.complete(null);
    }
  }

  /** Sends with the next sequence number (in order: a receiver refuses one below the last it took); 0 if not sent. */
  public synchronized long send(LongFunction<byte[]> encode, SocketAddress to) {
    long seq = sequence.next(System.currentTimeMillis());
    try {
      channel.send(ByteBuffer.wrap(encode.apply(seq)), to);
      return seq;
    } catch (IOException e) {
      LOG.debugf("%s: could not send to %s: %s", name, to, e.getMessage());
      return 0;
    }
  }

  private void receive(int maxLength, BiConsumer<ByteBuffer, SocketAddress> received) {
    ByteBuffer buffer = ByteBuffer.allocate(maxLength);
    while (!Thread.currentThread().isInterrupted()) {
      try {
        buffer.clear();
        SocketAddress from = channel.receive(buffer);
        received.accept(buffer, from);
      } catch (ClosedChannelException e) {
        return;
      } catch (IOException e) {
        LOG.warnf("%s socket: %s", name, e.getMessage());
      }
    }
  }

  @Override
  public void close() {
    if (receiver != null) {
      receiver.interrupt();
    }
    timer.shutdownNow();
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
