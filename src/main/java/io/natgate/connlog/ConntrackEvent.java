package io.natgate.connlog;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;

/**
 * A connection the kernel started tracking (NEW) or stopped tracking (DESTROY), from a ctnetlink event message. The
 * original tuple is the pod's side (before SNAT); the reply tuple's destination is the egress IP and its destination
 * port the translated source port. Counters and the duration are on DESTROY only (with nf_conntrack_acct and
 * nf_conntrack_timestamp on), null otherwise.
 */
public record ConntrackEvent(Instant time, Type type, String protocol, String tcpState, String srcIP,
    Integer srcPort, String dstIP, Integer dstPort, String replyDstIP, Integer replyDstPort, Long packetsOut,
    Long bytesOut, Long packetsIn, Long bytesIn, Long durationMillis, boolean assured, long mark, long id)
    implements KernelReport {

  public enum Type { NEW, DESTROY }

  // linux/netfilter/nfnetlink.h, nfnetlink_conntrack.h, netfilter/nf_conntrack_tcp.h
  private static final int NFNL_SUBSYS_CTNETLINK = 1;
  private static final int IPCTNL_MSG_CT_NEW = 0;
  private static final int IPCTNL_MSG_CT_DELETE = 2;
  private static final int NLM_F_CREATE = 0x400;
  private static final int CTA_TUPLE_ORIG = 1;
  private static final int CTA_TUPLE_REPLY = 2;
  private static final int CTA_STATUS = 3;
  private static final int CTA_PROTOINFO = 4;
  private static final int CTA_MARK = 8;
  private static final int CTA_COUNTERS_ORIG = 9;
  private static final int CTA_COUNTERS_REPLY = 10;
  private static final int CTA_ID = 12;
  private static final int CTA_TIMESTAMP = 20;
  private static final int CTA_TIMESTAMP_EVENT = 27;
  private static final int IPS_ASSURED = 1 << 2;
  private static final String[] TCP_STATES = {"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
      "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"};

  /**
   * The NEW and DESTROY events of one datagram from the ctnetlink event socket (other messages are skipped).
   *
   * @param received when it was read: the time of an event whose message carries no event timestamp
   * @throws IllegalArgumentException for a message that is cut short or has no tuple
   */
  public static List<ConntrackEvent> parse(ByteBuffer datagram, Instant received) {
    ByteBuffer b = datagram.duplicate().order(ByteOrder.nativeOrder());
    List<ConntrackEvent> events = new ArrayList<>();
    while (b.remaining() >= 16) {
      int start = b.position();
      int length = b.getInt(start);
      int kind = Short.toUnsignedInt(b.getShort(start + 4));
      int flags = Short.toUnsignedInt(b.getShort(start + 6));
      if (length < 16 || start + length > b.limit()) {
        throw new IllegalArgumentException("netlink message of " + length + " bytes in a datagram of " + b.limit());
      }
      int message = kind & 0xff;
      if (kind >> 8 == NFNL_SUBSYS_CTNETLINK && (message == IPCTNL_MSG_CT_DELETE
          || message == IPCTNL_MSG_CT_NEW && (flags & NLM_F_CREATE) != 0)) {
        // 16 bytes nlmsghdr, 4 bytes nfgenmsg, then the attributes
        events.add(event(b.slice(start + 20, length - 20).order(ByteOrder.nativeOrder()),
            message == IPCTNL_MSG_CT_NEW ? Type.NEW : Type.DESTROY, received));
      }
      b.position(start + align(length));
    }
    return events;
  }

  private static ConntrackEvent event(ByteBuffer attrs, Type type, Instant received) {
    Tuple orig = null;
    Tuple reply = null;
    long[] out = null;
    long[] in = null;
    String state = null;
    long status = 0;
    long mark = 0;
    Long id = null;
    Long duration = null;
    Instant time = received;
    for (ByteBuffer a = attrs; a.remaining() >= 4; ) {
      int at = a.position();
      int len = Short.toUnsignedInt(a.getShort(at));
      int attr = a.getShort(at + 2) & 0x3fff; // without the nested and byte-order flags
      if (len < 4 || at + len > a.limit()) {
        throw new IllegalArgumentException("attribute " + attr + " of " + len + " bytes is cut short");
      }
      ByteBuffer v = a.slice(at + 4, len - 4).order(ByteOrder.BIG_ENDIAN);
      switch (attr) {
        case CTA_TUPLE_ORIG -> orig = Tuple.parse(v);
        case CTA_TUPLE_REPLY -> reply = Tuple.parse(v);
        case CTA_STATUS -> status = Integer.toUnsignedLong(v.getInt(0));
        case CTA_MARK -> mark = Integer.toUnsignedLong(v.getInt(0));
        case CTA_ID -> id = Integer.toUnsignedLong(v.getInt(0));
        case CTA_COUNTERS_ORIG -> out = counters(v);
        case CTA_COUNTERS_REPLY -> in = counters(v);
        case CTA_PROTOINFO -> state = tcpState(v);
        case CTA_TIMESTAMP -> {
          long[] t = nested(v, 2); // start, stop (ns since the epoch)
          if (t[0] > 0 && t[1] > 0) {
            duration = (t[1] - t[0]) / 1_000_000;
          }
        }
        case CTA_TIMESTAMP_EVENT -> time = Instant.ofEpochSecond(0, v.getLong(0));
        default -> {
          // helper, NAT sequence adjustments, zone, labels...: not recorded
        }
      }
      a.position(at + align(len));
    }
    if (orig == null || reply == null || id == null) {
      throw new IllegalArgumentException(type + " event without both tuples or an id");
    }
    return new ConntrackEvent(time, type, orig.protocol(), state, orig.src(), orig.srcPort(), orig.dst(),
        orig.dstPort(), reply.dst(), reply.dstPort(), out == null ? null : out[0], out == null ? null : out[1],
        in == null ? null : in[0], in == null ? null : in[1], duration, (status & IPS_ASSURED) != 0, mark, id);
  }

  private record Tuple(String src, String dst, String protocol, Integer srcPort, Integer dstPort) {
    static Tuple parse(ByteBuffer v) {
      String src = null;
      String dst = null;
      String protocol = null;
      Integer sport = null;
      Integer dport = null;
      for (var e : attributes(v)) {
        ByteBuffer x = e.value();
        if (e.type() == 1) { // CTA_TUPLE_IP
          for (var ip : attributes(x)) {
            if (ip.type() == 1 && ip.value().remaining() == 4) {
              src = ipv4(ip.value());
            } else if (ip.type() == 2 && ip.value().remaining() == 4) {
              dst = ipv4(ip.value());
            }
          }
        } else if (e.type() == 2) { // CTA_TUPLE_PROTO
          for (var p : attributes(x)) {
            switch (p.type()) {
              case 1 -> protocol = protocolName(Byte.toUnsignedInt(p.value().get(0)));
              case 2 -> sport = Short.toUnsignedInt(p.value().getShort(0));
              case 3 -> dport = Short.toUnsignedInt(p.value().getShort(0));
              default -> {
                // ICMP id, type, code
              }
            }
          }
        }
      }
      if (src == null || dst == null) {
        throw new IllegalArgumentException("a tuple without IPv4 addresses");
      }
      return new Tuple(src, dst, protocol, sport, dport);
    }
  }

  /** A netlink attribute: its type (without the nested and byte-order flags) and its value, big-endian. */
  record Attribute(int type, ByteBuffer value) {
  }

  /** The attributes of a netlink message's payload (or of a nested attribute). */
  static List<Attribute> attributes(ByteBuffer v) {
    List<Attribute> list = new ArrayList<>();
    ByteBuffer a = v.duplicate().order(ByteOrder.nativeOrder());
    while (a.remaining() >= 4) {
      int at = a.position();
      int len = Short.toUnsignedInt(a.getShort(at));
      if (len < 4 || at + len > a.limit()) {
        throw new IllegalArgumentException("nested attribute of " + len + " bytes is cut short");
      }
      list.add(new Attribute(a.getShort(at + 2) & 0x3fff, a.slice(at + 4, len - 4).order(ByteOrder.BIG_ENDIAN)));
      a.position(Math.min(a.limit(), at + align(len)));
    }
    return list;
  }

  /** Packets and bytes (CTA_COUNTERS_PACKETS 1, CTA_COUNTERS_BYTES 2; 64 bits, or 32 on old kernels). */
  private static long[] counters(ByteBuffer v) {
    return nested(v, 2);
  }

  /** Values of nested attributes 1..n, each a 64-bit (or 32-bit) big-endian number. */
  private static long[] nested(ByteBuffer v, int n) {
    long[] values = new long[n];
    for (var e : attributes(v)) {
      if (e.type() >= 1 && e.type() <= n) {
        ByteBuffer x = e.value();
        values[e.type() - 1] = x.remaining() >= 8 ? x.getLong(0) : Integer.toUnsignedLong(x.getInt(0));
      }
    }
    return values;
  }

  private static String tcpState(ByteBuffer v) {
    for (var e : attributes(v)) {
      if (e.type() == 1) { // CTA_PROTOINFO_TCP
        for (var t : attributes(e.value())) {
          if (t.type() == 1) { // CTA_PROTOINFO_TCP_STATE
            int s = Byte.toUnsignedInt(t.value().get(0));
            return s < TCP_STATES.length ? TCP_STATES[s] : String.valueOf(s);
          }
        }
      }
    }
    return null;
  }

  static String protocolName(int number) {
    return switch (number) {
      case 6 -> "tcp";
      case 17 -> "udp";
      case 1 -> "icmp";
      case 132 -> "sctp";
      default -> String.valueOf(number);
    };
  }

  private static String ipv4(ByteBuffer v) {
    return Byte.toUnsignedInt(v.get(0)) + "." + Byte.toUnsignedInt(v.get(1)) + "." + Byte.toUnsignedInt(v.get(2))
        + "." + Byte.toUnsignedInt(v.get(3));
  }

  private static int align(int length) {
    return (length + 3) & ~3;
  }

  @Override
  public String egressIP() {
    return replyDstIP;
  }

  /**
   * Why the connection ended, as far as the kernel tells it: conntrack's last TCP state (other protocols end by
   * their idle timeout). A removal by hand (conntrack -D) cannot be told apart.
   */
  public String endReason() {
    if (tcpState == null) {
      return "tcp".equals(protocol) ? "unknown" : "timeout";
    }
    return switch (tcpState) {
      case "TIME_WAIT" -> "closed";
      case "CLOSE" -> assured ? "reset" : packetsIn != null && packetsIn > 0 ? "refused" : "reset";
      case "SYN_SENT", "SYN_RECV", "SYN_SENT2" -> "not-established";
      case "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK" -> "timeout";
      default -> "unknown";
    };
  }
}
