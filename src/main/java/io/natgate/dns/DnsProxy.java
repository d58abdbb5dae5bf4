package io.natgate.dns;

import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.natgate.api.v1alpha1.FailurePolicy;
import io.natgate.peers.NodeNamespace;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.DatagramChannel;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Supplier;
import org.jboss.logging.Logger;
import org.xbill.DNS.Flags;
import org.xbill.DNS.Message;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Section;

/**
 * The node's DNS proxy for the pods whose queries {@link DnsRedirect} sends to it (UDP and TCP on the node IP). It
 * asks the upstream resolver, reads the answer, has the gateway allow each address an allowed name got for that pod
 * ({@link PairExchange}), and only then releases the answer. When the gateway does not confirm in time, the pod's
 * failure policy decides: Drop answers SERVFAIL (the pod never holds an address its gateway would refuse), Allow
 * releases the answer anyway.
 */
final class DnsProxy implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(DnsProxy.class);
  /** How long the upstream has to answer before the pod gets SERVFAIL. */
  static final Duration UPSTREAM_TIMEOUT = Duration.ofSeconds(2);
  /** An idle TCP connection of a pod is closed after this. */
  static final Duration TCP_IDLE = Duration.ofSeconds(10);
  static final int MAX_TCP_CONNECTIONS = 64;
  private static final int MAX_MESSAGE = 65_535;

  private final String listen;
  private final int port;
  private final InetSocketAddress upstream;
  private final Duration grace;
  private final Duration ackTimeout;
  private final NodeNamespace namespace;
  private final PairExchange pairs;
  private final Supplier<Map<String, List<DnsRoutes.Route>>> routes;
  private final ThreadPoolExecutor handlers;
  private final Semaphore tcpSlots = new Semaphore(MAX_TCP_CONNECTIONS);
  private final MeterRegistry metrics;
  private final Timer confirmTimer;
  private volatile DatagramChannel udp;
  private volatile ServerSocketChannel tcp;
  private final List<Thread> threads = new ArrayList<>();

  DnsProxy(String listen, int port, InetSocketAddress upstream, Duration grace, Duration ackTimeout,
      NodeNamespace namespace, PairExchange pairs, Supplier<Map<String, List<DnsRoutes.Route>>> routes,
      MeterRegistry metrics) {
    this.listen = listen;
    this.port = port;
    this.upstream = upstream;
    this.grace = grace;
    this.ackTimeout = ackTimeout;
    this.namespace = namespace;
    this.pairs = pairs;
    this.routes = routes;
    this.metrics = metrics;
    // Bounded: a flood of queries is dropped (the pods retry), never queued without end.
    this.handlers = new ThreadPoolExecutor(32, 32, 30, TimeUnit.SECONDS, new ArrayBlockingQueue<>(4096),
        namespace.threads("natgate-dns-query"), (r, e) -> count("dropped"));
    this.confirmTimer = Timer.builder("natgate_agent_dns_confirm_seconds")
        .description("Time from the upstream's answer to the gateway's confirmation, for answers with allowed names")
        .publishPercentileHistogram().register(metrics);
  }

  DnsProxy start() {
    CompletableFuture<Void> opened = new CompletableFuture<>();
    Thread udpLoop = namespace.threads("natgate-dns-udp").newThread(() -> {
      try {
        udp = DatagramChannel.open(StandardProtocolFamily.INET).bind(new InetSocketAddress(listen, port));
        tcp = ServerSocketChannel.open(StandardProtocolFamily.INET).bind(new InetSocketAddress(listen, port), 256);
        opened.complete(null);
      } catch (IOException | RuntimeException e) {
        opened.completeExceptionally(e);
        return;
      }
      serveUdp();
    });
    udpLoop.start();
    threads.add(udpLoop);
    opened.join();
    Thread tcpLoop = namespace.threads("natgate-dns-tcp").newThread(this::serveTcp);
    tcpLoop.start();
    threads.add(tcpLoop);
    return this;
  }

  private void serveUdp() {
    ByteBuffer buffer = ByteBuffer.allocate(MAX_MESSAGE);
    while (!Thread.currentThread().isInterrupted()) {
      try {
        buffer.clear();
        SocketAddress from = udp.receive(buffer);
        byte[] query = Arrays.copyOf(buffer.array(), buffer.position());
        handlers.execute(() -> {
          byte[] answer = answer(from, query, false);
          try {
            if (answer != null) {
              udp.send(ByteBuffer.wrap(answer), from);
            }
          } catch (IOException e) {
            LOG.debugf("could not answer %s: %s", from, e.getMessage());
          }
        });
      } catch (ClosedChannelException e) {
        return;
      } catch (IOException e) {
        LOG.warnf("DNS proxy (UDP): %s", e.getMessage());
      }
    }
  }

  private void serveTcp() {
    while (!Thread.currentThread().isInterrupted()) {
      SocketChannel c;
      try {
        c = tcp.accept();
      } catch (ClosedChannelException e) {
        return;
      } catch (IOException e) {
        LOG.warnf("DNS proxy (TCP): %s", e.getMessage());
        continue;
      }
      if (!tcpSlots.tryAcquire()) {
        close(c.socket());
        count("dropped");
        continue;
      }
      namespace.threads("natgate-dns-tcp-conn").newThread(() -> {
        try (Socket s = c.socket()) {
          serveTcp(s);
        } catch (IOException e) {
          LOG.debugf("DNS proxy (TCP): %s", e.getMessage());
        } finally {
          tcpSlots.release();
        }
      }).start();
    }
  }

  /** Length-prefixed messages (RFC 1035 4.2.2), one after the other, until the pod closes or goes idle. */
  private void serveTcp(Socket s) throws IOException {
    s.setSoTimeout((int) TCP_IDLE.toMillis());
    var in = new DataInputStream(s.getInputStream());
    var out = new DataOutputStream(s.getOutputStream());
    while (true) {
      byte[] query;
      try {
        query = new byte[in.readUnsignedShort()];
        in.readFully(query);
      } catch (EOFException | java.net.SocketTimeoutException e) {
        return;
      }
      byte[] answer = answer(s.getRemoteSocketAddress(), query, true);
      if (answer == null) {
        return;
      }
      out.writeShort(answer.length);
      out.write(answer);
      out.flush();
    }
  }

  /** The answer to release to the pod, or null to say nothing (a query that does not even parse). */
  byte[] answer(SocketAddress from, byte[] query, boolean overTcp) {
    Message asked;
    try {
      asked = new Message(query);
    } catch (IOException e) {
      count("malformed");
      return null;
    }
    String pod = ((InetSocketAddress) from).getAddress().getHostAddress();
    List<DnsRoutes.Route> mine = routes.get().getOrDefault(pod, List.of());
    if (mine.isEmpty()) {
      count("refused"); // not a pod this node follows: the proxy is no open resolver
      return error(asked, Rcode.REFUSED);
    }
    byte[] raw;
    try {
      raw = overTcp ? upstreamTcp(query) : upstreamUdp(query);
    } catch (IOException e) {
      count("upstream_failed");
      LOG.debugf("upstream %s: %s", upstream, e.getMessage());
      return error(asked, Rcode.SERVFAIL);
    }
    Message answer;
    try {
      answer = new Message(raw);
    } catch (IOException e) {
      count("released"); // nothing in it the pod could use either; no address to allow
      return raw;
    }
    return confirmed(pod, answer, mine) ? counted("released", raw) : counted("servfail", error(asked, Rcode.SERVFAIL));
  }

  /**
   * Has the gateway of each route allow what the answer gives for the route's names; true when the answer may be
   * released: every confirmation came in time, or the routes whose did not have failure policy Allow.
   */
  private boolean confirmed(String pod, Message answer, List<DnsRoutes.Route> mine) {
    long started = System.nanoTime();
    long deadline = started + ackTimeout.toNanos();
    boolean release = true;
    boolean waited = false;
    for (DnsRoutes.Route route : mine) {
      List<AnswerPairs.Allowed> allowed = AnswerPairs.of(answer, route.fqdns());
      if (allowed.isEmpty()) {
        continue;
      }
      boolean ok;
      if (route.egressIP() == null) {
        ok = false; // no gateway holds the pod's egress IP now: nothing to allow it on
      } else {
        waited = true;
        List<CompletableFuture<Void>> sent = new ArrayList<>();
        allowed.stream().map(AnswerPairs.Allowed::fqdn).distinct().forEach(fqdn -> sent.add(pairs.allow(
            route.gateway(), fqdn, allowed.stream().filter(a -> a.fqdn().equals(fqdn))
                .map(a -> new PairMessage.Pair(pod, a.address(), AnswerPairs.timeoutSeconds(a.ttlSeconds(), grace)))
                .distinct().toList(), route.egressIP(), route.local())));
        ok = awaitAll(sent, deadline);
      }
      if (!ok && route.failurePolicy() != FailurePolicy.Allow) {
        release = false;
      }
    }
    if (waited) {
      confirmTimer.record(System.nanoTime() - started, TimeUnit.NANOSECONDS);
    }
    return release;
  }

  private static boolean awaitAll(List<CompletableFuture<Void>> sent, long deadline) {
    CompletableFuture<Void> all = CompletableFuture.allOf(sent.toArray(CompletableFuture[]::new));
    try {
      all.get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
      return true;
    } catch (TimeoutException | ExecutionException e) {
      return false;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    } finally {
      sent.forEach(f -> f.cancel(false)); // stops resending
    }
  }

  private byte[] upstreamUdp(byte[] query) throws IOException {
    // A socket per query: a fresh source port each time, as a stub resolver would use.
    try (DatagramSocket s = new DatagramSocket()) {
      s.setSoTimeout((int) UPSTREAM_TIMEOUT.toMillis());
      s.connect(upstream);
      s.send(new DatagramPacket(query, query.length));
      byte[] buffer = new byte[MAX_MESSAGE];
      int id = (query[0] & 0xff) << 8 | query[1] & 0xff;
      while (true) {
        DatagramPacket p = new DatagramPacket(buffer, buffer.length);
        s.receive(p);
        if (p.getLength() >= 2 && ((buffer[0] & 0xff) << 8 | buffer[1] & 0xff) == id) {
          return Arrays.copyOf(buffer, p.getLength());
        }
      }
    }
  }

  private byte[] upstreamTcp(byte[] query) throws IOException {
    try (Socket s = new Socket()) {
      s.connect(upstream, (int) UPSTREAM_TIMEOUT.toMillis());
      s.setSoTimeout((int) UPSTREAM_TIMEOUT.toMillis());
      var out = new DataOutputStream(s.getOutputStream());
      out.writeShort(query.length);
      out.write(query);
      out.flush();
      var in = new DataInputStream(s.getInputStream());
      byte[] answer = new byte[in.readUnsignedShort()];
      in.readFully(answer);
      return answer;
    }
  }

  /** An answer with only the question and an error code. */
  static byte[] error(Message asked, int rcode) {
    Message m = new Message(asked.getHeader().getID());
    m.getHeader().setFlag(Flags.QR);
    if (asked.getHeader().getFlag(Flags.RD)) {
      m.getHeader().setFlag(Flags.RD);
    }
    m.getHeader().setFlag(Flags.RA);
    m.getHeader().setRcode(rcode);
    if (asked.getQuestion() != null) {
      m.addRecord(asked.getQuestion(), Section.QUESTION);
    }
    return m.toWire();
  }

  private byte[] counted(String outcome, byte[] answer) {
    count(outcome);
    return answer;
  }

  private void count(String outcome) {
    metrics.counter("natgate_agent_dns_queries_total", "outcome", outcome).increment();
  }

  private static void close(Socket s) {
    try {
      s.close();
    } catch (IOException e) {
      // gone anyway
    }
  }

  @Override
  public void close() {
    threads.forEach(Thread::interrupt);
    try {
      if (udp != null) {
        udp.close();
      }
      if (tcp != null) {
        tcp.close();
      }
    } catch (IOException e) {
      // closing anyway
    }
    handlers.shutdownNow();
  }
}
