package io.natgate.connlog;

import com.sun.jna.LastErrorException;
import io.natgate.LibC;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A netlink socket bound to one NFLOG group (nfnetlink_log): the packets a gateway's allow list refused, copied by
 * the kernel as its NFLOG rule logs them. A refused connection never becomes a conntrack entry (the rejected packet's
 * entry is never confirmed), so conntrack's events cannot report it. Like {@link EventSocket}, its receive buffer is
 * the kernel's room for a burst; an overflow is reported by the next {@link #receive}.
 */
final class DeniedSocket implements AutoCloseable {
  // linux/netfilter/nfnetlink_log.h
  private static final int NFNL_SUBSYS_ULOG = 4;
  private static final int NFULNL_MSG_CONFIG = 1;
  private static final int NFULA_CFG_CMD = 1;
  private static final int NFULA_CFG_MODE = 2;
  private static final int NFULA_CFG_TIMEOUT = 4;
  private static final int NFULNL_CFG_CMD_BIND = 1;
  private static final int NFULNL_COPY_PACKET = 2;
  /** Enough of the packet for its IPv4 header (up to 60 bytes) and ports. */
  private static final int COPY_RANGE = 64;
  /** The kernel sends what it gathered after this long at the latest (in 1/100 s). */
  private static final int FLUSH_HUNDREDTHS = 10;
  private static final int NLM_F_REQUEST = 1;
  private static final int NLM_F_ACK = 4;
  private static final int NLMSG_ERROR = 2;

  private final int fd;
  private final byte[] buffer = new byte[1 << 16];
  private final EventSocket.Receiver packets = new EventSocket.Receiver();

  /**
   * @param netns a network namespace file to open the socket in, or null for the caller's own; the calling thread
   *              moves into it
   * @throws LastErrorException when the group is bound by someone else (EBUSY) or NFLOG is missing
   */
  DeniedSocket(String netns, int group, int receiveBufferBytes) {
    fd = EventSocket.netfilterSocket(netns, receiveBufferBytes, 0);
    try {
      configure(group, attribute(NFULA_CFG_CMD, new byte[] {NFULNL_CFG_CMD_BIND}));
      configure(group, attribute(NFULA_CFG_MODE, ByteBuffer.allocate(6).putInt(COPY_RANGE)
          .put((byte) NFULNL_COPY_PACKET).put((byte) 0).array()));
      configure(group, attribute(NFULA_CFG_TIMEOUT, ByteBuffer.allocate(4).putInt(FLUSH_HUNDREDTHS).array()));
    } catch (LastErrorException | IllegalStateException e) {
      LibC.close(fd);
      throw e;
    }
  }

  /** One netlink attribute, padded to 4 bytes (its length field without the padding). */
  private static byte[] attribute(int type, byte[] value) {
    ByteBuffer a = ByteBuffer.allocate((4 + value.length + 3) & ~3).order(ByteOrder.nativeOrder());
    a.putShort((short) (4 + value.length)).putShort((short) type).put(value);
    return a.array();
  }

  /** Sends one configuration message for the group and waits for the kernel's acknowledgement. */
  private void configure(int group, byte[] attribute) {
    int length = 16 + 4 + attribute.length;
    ByteBuffer m = ByteBuffer.allocate(length).order(ByteOrder.nativeOrder());
    m.putInt(length).putShort((short) (NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_CONFIG))
        .putShort((short) (NLM_F_REQUEST | NLM_F_ACK)).putInt(0).putInt(0)
        .put((byte) 0).put((byte) 0).order(ByteOrder.BIG_ENDIAN).putShort((short) group) // nfgenmsg, res_id: group
        .put(attribute);
    LibC.send(fd, m.array(), length, 0);
    int n = LibC.recv(fd, buffer, buffer.length, 0);
    ByteBuffer b = ByteBuffer.wrap(buffer, 0, n).order(ByteOrder.nativeOrder());
    if (n >= 20 && b.getShort(4) == NLMSG_ERROR && b.getInt(16) != 0) {
      throw new IllegalStateException("NFLOG group " + group + ": the kernel refused it (errno " + -b.getInt(16)
          + (b.getInt(16) == -16 ? ", EBUSY: another process listens to that group" : "") + ")");
    }
  }

  /** Blocks up to half a second. */
  EventSocket.Received receive() {
    return packets.receive(fd, 0);
  }

  @Override
  public void close() {
    LibC.close(fd);
  }
}
