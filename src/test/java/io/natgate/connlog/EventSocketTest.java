package io.natgate.connlog;

import static org.assertj.core.api.Assertions.assertThat;

import com.sun.jna.Native;
import io.natgate.LibC;
import io.natgate.dataplane.DataplaneSettings;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The event socket's kernel-side filter, run by this machine's kernel: attached to one end of a Unix datagram socket
 * pair (no privilege needed; the kernel filters what reaches that end as it does a netlink socket's multicast), fed
 * the captured ctnetlink messages as they came and with their mark changed or missing.
 */
class EventSocketTest {
  /** socketpair(2) is not in {@link LibC}: only this test needs it. */
  static final class Pair {
    static {
      Native.register("c");
    }

    private Pair() {
    }

    static native int socketpair(int domain, int type, int protocol, int[] fds);
  }

  private final int[] fds = new int[2];

  @BeforeEach
  void open() {
    assertThat(Pair.socketpair(1, 2, 0, fds)).isZero(); // AF_UNIX, SOCK_DGRAM
    EventSocket.attach(fds[1], EventSocket.markFilter(DataplaneSettings.LOG_CTMARK));
  }

  @AfterEach
  void close() {
    LibC.close(fds[0]);
    LibC.close(fds[1]);
  }

  /** The ctnetlink messages that reached the filtered end, as their first bytes' event types. */
  private List<ConntrackEvent> passed(List<ByteBuffer> sent) {
    for (ByteBuffer m : sent) {
      byte[] bytes = new byte[m.remaining()];
      m.duplicate().get(bytes);
      assertThat(LibC.send(fds[0], bytes, bytes.length, 0)).isEqualTo(bytes.length);
    }
    var receiver = new EventSocket.Receiver();
    List<ConntrackEvent> got = new ArrayList<>();
    for (var r = receiver.receive(fds[1], 0x40); r.datagram() != null; r = receiver.receive(fds[1], 0x40)) {
      got.addAll(ConntrackEvent.parse(r.datagram(), ConntrackEventTest.RECEIVED));
    }
    return got;
  }

  @Test
  void passesEveryMessageWithTheLogsMark() {
    List<ByteBuffer> all = new ArrayList<>(ConntrackEventTest.closed());
    all.addAll(ConntrackEventTest.refused());
    assertThat(passed(all)).hasSize(all.size()).allSatisfy(e -> assertThat(e.mark()).isEqualTo(0x80000000L));
  }

  @Test
  void passesAMarkWithOtherBitsBesidesTheLogs() {
    assertThat(passed(List.of(withMark(ConntrackEventTest.closed().get(0), 0x80000001))))
        .extracting(ConntrackEvent::mark).containsExactly(0x80000001L);
  }

  @Test
  void dropsMessagesWithAnotherMarkOrNone() {
    ByteBuffer start = ConntrackEventTest.closed().get(0);
    ByteBuffer end = ConntrackEventTest.closed().get(2);
    List<ConntrackEvent> got = passed(List.of(withMark(start, 0x1), withoutMark(end), withMark(start, 0x40000000),
        end));
    assertThat(got).as("only the unchanged message").hasSize(1);
    assertThat(got.get(0).type()).isEqualTo(ConntrackEvent.Type.DESTROY);
  }

  /** A copy of one ctnetlink message with its CTA_MARK set to {@code mark}. */
  private static ByteBuffer withMark(ByteBuffer message, int mark) {
    ByteBuffer copy = copy(message);
    copy.order(ByteOrder.BIG_ENDIAN).putInt(markAttribute(copy) + 4, mark);
    return copy;
  }

  /** A copy of one ctnetlink message whose CTA_MARK is renamed to an attribute type the kernel does not use. */
  private static ByteBuffer withoutMark(ByteBuffer message) {
    ByteBuffer copy = copy(message);
    copy.order(ByteOrder.nativeOrder()).putShort(markAttribute(copy) + 2, (short) 0x3ff);
    return copy;
  }

  private static ByteBuffer copy(ByteBuffer message) {
    ByteBuffer copy = ByteBuffer.allocate(message.remaining());
    copy.put(message.duplicate()).flip();
    return copy;
  }

  /** Where the message's CTA_MARK attribute starts. */
  private static int markAttribute(ByteBuffer message) {
    ByteBuffer b = message.duplicate().order(ByteOrder.nativeOrder());
    for (int at = 20; at + 4 <= b.limit(); at += (Short.toUnsignedInt(b.getShort(at)) + 3) & ~3) {
      if ((b.getShort(at + 2) & 0x3fff) == 8) {
        return at;
      }
    }
    throw new AssertionError("no CTA_MARK in the captured message");
  }
}
