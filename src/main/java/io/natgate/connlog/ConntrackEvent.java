package io.natgate.connlog;

import java.time.Instant;

/**
 * One line of {@code conntrack -E -o timestamp,extended,id}: a connection the kernel started tracking (NEW) or
 * stopped tracking (DESTROY). The original tuple is the pod's side (before SNAT); the reply tuple's destination is
 * the egress IP and its destination port the translated source port. Counters and delta are on DESTROY only (with
 * accounting and timestamps on), null otherwise.
 */
public record ConntrackEvent(Instant time, Type type, String protocol, String tcpState, String srcIP,
    Integer srcPort, String dstIP, Integer dstPort, String replyDstIP, Integer replyDstPort, Long packetsOut,
    Long bytesOut, Long packetsIn, Long bytesIn, Long deltaSeconds, boolean assured, long id) {

  public enum Type { NEW, DESTROY }

  /**
   * Parses one line; throws {@link IllegalArgumentException} naming what is wrong with it. The first
   * src/dst/sport/dport/packets/bytes belong to the original direction, the second to the reply; the last id= is
   * conntrack's id (ICMP tuples have an id= of their own).
   */
  public static ConntrackEvent parse(String line) {
    String[] t = line.trim().split("\\s+");
    if (t.length < 7 || !t[0].startsWith("[") || !t[1].startsWith("[")) {
      throw new IllegalArgumentException("not a conntrack event line: " + line);
    }
    Instant time = time(t[0].substring(1, t[0].length() - 1));
    Type type = switch (t[1]) {
      case "[NEW]" -> Type.NEW;
      case "[DESTROY]" -> Type.DESTROY;
      default -> throw new IllegalArgumentException("unexpected event type " + t[1] + ": " + line);
    };
    String protocol = t[4];
    String state = null;
    String[] src = new String[2];
    String[] dst = new String[2];
    Integer[] sport = new Integer[2];
    Integer[] dport = new Integer[2];
    Long[] packets = new Long[2];
    Long[] bytes = new Long[2];
    int dir = -1; // 0 original, 1 reply: a src= starts each tuple
    Long delta = null;
    Long id = null;
    boolean assured = false;
    for (int i = 6; i < t.length; i++) {
      String token = t[i];
      int eq = token.indexOf('=');
      if (eq < 0) {
        if (token.equals("[ASSURED]")) {
          assured = true;
        } else if (!token.startsWith("[") && !Character.isDigit(token.charAt(0))) {
          state = token; // TCP's (and SCTP's) state; digits are the remaining timeout
        }
        continue;
      }
      String key = token.substring(0, eq);
      String value = token.substring(eq + 1);
      switch (key) {
        case "src" -> src[dir = Math.min(dir + 1, 1)] = value;
        case "dst" -> dst[Math.max(dir, 0)] = value;
        case "sport" -> sport[Math.max(dir, 0)] = Integer.valueOf(value);
        case "dport" -> dport[Math.max(dir, 0)] = Integer.valueOf(value);
        case "packets" -> packets[Math.max(dir, 0)] = Long.valueOf(value);
        case "bytes" -> bytes[Math.max(dir, 0)] = Long.valueOf(value);
        case "delta-time" -> delta = Long.valueOf(value);
        case "id" -> id = Long.valueOf(value);
        default -> {
          // mark, zone, use, ICMP's type and code: not recorded
        }
      }
    }
    if (src[0] == null || dst[0] == null || dst[1] == null || id == null) {
      throw new IllegalArgumentException("conntrack event without both tuples or an id: " + line);
    }
    return new ConntrackEvent(time, type, protocol, state, src[0], sport[0], dst[0], dport[0], dst[1], dport[1],
        packets[0], bytes[0], packets[1], bytes[1], delta, assured, id);
  }

  /** {@code 1795991345.354266}: seconds and microseconds since the epoch. */
  private static Instant time(String s) {
    int dot = s.indexOf('.');
    try {
      long seconds = Long.parseLong(dot < 0 ? s : s.substring(0, dot));
      String fraction = dot < 0 ? "" : (s.substring(dot + 1) + "000000000").substring(0, 9);
      return Instant.ofEpochSecond(seconds, fraction.isEmpty() ? 0 : Long.parseLong(fraction));
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("bad timestamp [" + s + "]");
    }
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
