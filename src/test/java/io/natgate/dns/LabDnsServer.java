package io.natgate.dns;

import io.natgate.dataplane.Kernel;
import io.natgate.peers.NodeNamespace;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.DatagramChannel;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.xbill.DNS.ARecord;
import org.xbill.DNS.CNAMERecord;
import org.xbill.DNS.DClass;
import org.xbill.DNS.Flags;
import org.xbill.DNS.Message;
import org.xbill.DNS.Name;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Section;

/**
 * The lab's DNS server (test code): UDP port 53 in a namespace of the lab. Every query of a name gets the next two
 * addresses of that name's pool (rotating) and a TTL of 1 to 5 s (cycling), so that no two answers in a row are
 * alike; a name can point to another by CNAME first (UDP and TCP). It also accepts TCP connections on one port of every address
 * (and closes them), the destinations the pods connect to.
 */
final class LabDnsServer implements AutoCloseable {
  /** @param cname the name the answer points to by CNAME before its addresses, or null */
  record Zone(String cname, List<String> pool) {
  }

  private final Map<String, Zone> zones;
  private final Map<String, AtomicInteger> turns = new ConcurrentHashMap<>();
  private final AtomicLong queries = new AtomicLong();
  private final NodeNamespace namespace;
  private DatagramChannel udp;
  private ServerSocketChannel tcp;
  private ServerSocketChannel dnsTcp;

  LabDnsServer(Kernel kernel, Map<String, Zone> zones) {
    this.zones = Map.copyOf(zones);
    this.namespace = new NodeNamespace(kernel);
  }

  LabDnsServer start(String listen, int connectPort) {
    CompletableFuture<Void> opened = new CompletableFuture<>();
    namespace.threads("lab-dns").newThread(() -> {
      try {
        udp = DatagramChannel.open(StandardProtocolFamily.INET).bind(new InetSocketAddress(listen, 53));
        tcp = ServerSocketChannel.open(StandardProtocolFamily.INET).bind(new InetSocketAddress("0.0.0.0", connectPort),
            1024);
        dnsTcp = ServerSocketChannel.open(StandardProtocolFamily.INET).bind(new InetSocketAddress(listen, 53), 64);
        opened.complete(null);
      } catch (IOException e) {
        opened.completeExceptionally(e);
        return;
      }
      serve();
    }).start();
    opened.join();
    namespace.threads("lab-accept").newThread(this::accept).start();
    namespace.threads("lab-dns-tcp").newThread(this::serveTcp).start();
    return this;
  }

  long queries() {
    return queries.get();
  }

  private void serve() {
    ByteBuffer buffer = ByteBuffer.allocate(65_535);
    while (true) {
      try {
        buffer.clear();
        var from = udp.receive(buffer);
        Message q = new Message(java.util.Arrays.copyOf(buffer.array(), buffer.position()));
        queries.incrementAndGet();
        udp.send(ByteBuffer.wrap(answer(q).toWire()), from);
      } catch (ClosedChannelException e) {
        return;
      } catch (IOException e) {
        // a malformed query: no answer
      }
    }
  }

  /** DNS over TCP: length-prefixed messages, one connection at a time (the tests ask one query at a time). */
  private void serveTcp() {
    while (true) {
      try (SocketChannel c = dnsTcp.accept()) {
        var in = new java.io.DataInputStream(c.socket().getInputStream());
        var out = new java.io.DataOutputStream(c.socket().getOutputStream());
        while (true) {
          byte[] query = new byte[in.readUnsignedShort()];
          in.readFully(query);
          queries.incrementAndGet();
          byte[] answer = answer(new Message(query)).toWire();
          out.writeShort(answer.length);
          out.write(answer);
          out.flush();
        }
      } catch (ClosedChannelException e) {
        return;
      } catch (IOException e) {
        // the client closed: next connection
      }
    }
  }

  private void accept() {
    while (true) {
      try (SocketChannel c = tcp.accept()) {
        // accepted: the connection was allowed all the way
      } catch (ClosedChannelException e) {
        return;
      } catch (IOException e) {
        // next
      }
    }
  }

  Message answer(Message q) throws IOException {
    Message a = new Message(q.getHeader().getID());
    a.getHeader().setFlag(Flags.QR);
    a.getHeader().setFlag(Flags.AA);
    a.addRecord(q.getQuestion(), Section.QUESTION);
    Name asked = q.getQuestion().getName();
    Zone zone = zones.get(DnsNames.normalize(asked.toString()));
    if (zone == null) {
      a.getHeader().setRcode(Rcode.NXDOMAIN);
      return a;
    }
    int turn = turns.computeIfAbsent(asked.toString(), k -> new AtomicInteger()).getAndIncrement();
    long ttl = 1 + turn % 5;
    Name owner = asked;
    if (zone.cname() != null) {
      owner = Name.fromString(zone.cname() + ".");
      a.addRecord(new CNAMERecord(asked, DClass.IN, ttl, owner), Section.ANSWER);
    }
    for (int i = 0; i < 2; i++) {
      String ip = zone.pool().get((2 * turn + i) % zone.pool().size());
      a.addRecord(new ARecord(owner, DClass.IN, ttl, InetAddress.getByName(ip)), Section.ANSWER);
    }
    return a;
  }

  @Override
  public void close() {
    try {
      udp.close();
      tcp.close();
      dnsTcp.close();
    } catch (IOException e) {
      // closing anyway
    }
    namespace.close();
  }
}
