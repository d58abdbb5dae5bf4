package io.natgate.connlog;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;

/**
 * A packet the gateway refused by its allow list, from an NFLOG message: the first packet of a connection that was
 * never made (with TCP, its SYN). {@code egressIP} is what the NFLOG rule's prefix names: the address the
 * connection would have left with.
 */
public record DeniedPacket(Instant time, String egressIP, String protocol, String srcIP, Integer srcPort, String dstIP,
    Integer dstPort) implements KernelReport {
  private static final String PREFIX = io.natgate.dataplane.DataplaneSettings.DENIED_PREFIX;
  // linux/netfilter/nfnetlink_log.h
  private static final int NFNL_SUBSYS_ULOG = 4;
  private static final int NFULNL_MSG_PACKET = 0;
  private static final int NFULA_TIMESTAMP = 3;
  private static final int NFULA_PAYLOAD = 9;
  private static final int NFULA_PREFIX = 10;

  /**
   * The refusals of one datagram of the NFLOG socket (other messages, and packets logged with another prefix, are
   * skipped).
   *
   * @param received when it was read: the time of a packet that carries no timestamp (forwarded ones usually not)
   * @throws IllegalArgumentException for a message that is cut short
   */
  public static List<DeniedPacket> parse(ByteBuffer datagram, Instant received) {
    ByteBuffer b = datagram.duplicate().order(ByteOrder.nativeOrder());
    List<DeniedPacket> packets = new ArrayList<>();
    while (b.remaining() >= 16) {
      int start = b.position();
      int length = b.getInt(start);
      int kind = Short.toUnsignedInt(b.getShort(start + 4));
      if (length < 16 || start + length > b.limit()) {
        throw new IllegalArgumentException("netlink message of " + length + " bytes in a datagram of " + b.limit());
      }
      if (kind == (NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET) && length >= 20) {
        DeniedPacket p = packet(b.slice(start + 20, length - 20).order(ByteOrder.nativeOrder()), received);
        if (p != null) {
          packets.add(p);
        }
      }
      b.position(start + ((length + 3) & ~3));
    }
    return packets;
  }

  private static DeniedPacket packet(ByteBuffer attrs, Instant received) {
    String prefix = null;
    ByteBuffer payload = null;
    Instant time = received;
    for (var attribute : ConntrackEvent.attributes(attrs)) {
      ByteBuffer v = attribute.value();
      switch (attribute.type()) {
        case NFULA_PREFIX -> {
          byte[] text = new byte[v.remaining()];
          v.get(text);
          int end = 0;
          while (end < text.length && text[end] != 0) {
            end++;
          }
          prefix = new String(text, 0, end, java.nio.charset.StandardCharsets.US_ASCII);
        }
        case NFULA_PAYLOAD -> payload = v;
        case NFULA_TIMESTAMP -> {
          if (v.remaining() >= 16) {
            time = Instant.ofEpochSecond(v.getLong(0), v.getLong(8) * 1000);
          }
        }
        default -> {
          // mark, interfaces, hardware address...: not recorded
        }
      }
    }
    if (prefix == null || !prefix.startsWith(PREFIX) || payload == null || payload.remaining() < 20
        || (payload.get(0) >> 4) != 4) {
      return null;
    }
    int headerLength = (payload.get(0) & 0x0f) * 4;
    int protocol = Byte.toUnsignedInt(payload.get(9));
    boolean ports = (protocol == 6 || protocol == 17 || protocol == 132) && payload.remaining() >= headerLength + 4;
    return new DeniedPacket(time, prefix.substring(PREFIX.length()).trim(), ConntrackEvent.protocolName(protocol),
        ipv4(payload, 12), ports ? Short.toUnsignedInt(payload.getShort(headerLength)) : null, ipv4(payload, 16),
        ports ? Short.toUnsignedInt(payload.getShort(headerLength + 2)) : null);
  }

  private static String ipv4(ByteBuffer v, int at) {
    return Byte.toUnsignedInt(v.get(at)) + "." + Byte.toUnsignedInt(v.get(at + 1)) + "." + Byte.toUnsignedInt(v.get(at + 2))
        + "." + Byte.toUnsignedInt(v.get(at + 3));
  }
}
