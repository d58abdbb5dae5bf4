package io.natgate.connlog;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Messages as the kernel (6.18) sent them on the ctnetlink event socket, captured in a namespace whose SNAT rule
 * set the log's conntrack mark (0x80000000) with accounting and timestamps on: one hex datagram a line.
 */
class ConntrackEventTest {
  static final Instant RECEIVED = Instant.parse("2030-01-01T00:00:00Z"); // not the events' time

  /** TCP NEW, UDP NEW, TCP DESTROY of a connection that sent 50 bytes and got 12 back. */
  static List<ByteBuffer> closed() {
    return datagrams("/connlog/events-closed-tcp-and-udp.hex");
  }

  /** TCP NEW and DESTROY of a connection refused (RST), UDP NEW. */
  static List<ByteBuffer> refused() {
    return datagrams("/connlog/events-refused-tcp-and-udp.hex");
  }

  static List<ByteBuffer> datagrams(String resource) {
    try (InputStream in = ConntrackEventTest.class.getResourceAsStream(resource)) {
      return new String(in.readAllBytes(), StandardCharsets.US_ASCII).lines().filter(l -> !l.isBlank())
          .map(l -> ByteBuffer.wrap(HexFormat.of().parseHex(l.trim()))).toList();
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
  }

  static ConntrackEvent only(ByteBuffer datagram) {
    List<ConntrackEvent> events = ConntrackEvent.parse(datagram, RECEIVED);
    assertThat(events).hasSize(1);
    return events.get(0);
  }

  @Test
  void newTcpConnectionHasBothTuplesAndNoCounters() {
    ConntrackEvent e = only(closed().get(0));
    assertThat(e.type()).isEqualTo(ConntrackEvent.Type.NEW);
    assertThat(e.protocol()).isEqualTo("tcp");
    assertThat(e.tcpState()).isEqualTo("SYN_SENT");
    assertThat(e.srcIP()).isEqualTo("198.18.5.1");
    assertThat(e.dstIP()).isEqualTo("198.18.5.2");
    assertThat(e.dstPort()).isEqualTo(7777);
    assertThat(e.srcPort()).isBetween(1024, 65535);
    assertThat(e.replyDstIP()).as("the address SNAT chose").isEqualTo("198.18.5.1");
    assertThat(e.replyDstPort()).as("the translated source port").isEqualTo(e.srcPort());
    assertThat(e.bytesOut()).isNull();
    assertThat(e.mark()).isEqualTo(0x80000000L);
    assertThat(e.time()).as("the kernel's event timestamp, at the capture")
        .isBetween(Instant.parse("2026-11-29T23:00:00Z"), Instant.parse("2026-11-29T23:10:00Z"));
  }

  @Test
  void destroyedTcpConnectionCarriesCountersEachWayDurationAndWhyItEnded() {
    ConntrackEvent start = only(closed().get(0));
    ConntrackEvent e = only(closed().get(2));
    assertThat(e.type()).isEqualTo(ConntrackEvent.Type.DESTROY);
    assertThat(e.id()).isEqualTo(start.id());
    assertThat(e.tcpState()).isEqualTo("TIME_WAIT");
    assertThat(e.assured()).isTrue();
    // IP packet lengths: 50 bytes of payload out, 12 back, plus 40 bytes of headers and up to 20 of options each.
    assertThat(e.bytesOut() - 40 * e.packetsOut()).isBetween(50L, 50 + 20 * e.packetsOut());
    assertThat(e.bytesIn() - 40 * e.packetsIn()).isBetween(12L, 12 + 20 * e.packetsIn());
    assertThat(e.durationMillis()).isNotNull().isNotNegative();
    assertThat(e.endReason()).isEqualTo("closed");
  }

  @Test
  void refusedAndUdp() {
    ConntrackEvent refused = only(refused().get(1));
    assertThat(refused.tcpState()).isEqualTo("CLOSE");
    assertThat(refused.endReason()).isEqualTo("refused");
    ConntrackEvent udp = only(closed().get(1));
    assertThat(udp.protocol()).isEqualTo("udp");
    assertThat(udp.tcpState()).isNull();
    assertThat(udp.dstPort()).isEqualTo(9999);
    assertThat(udp.endReason()).isEqualTo("timeout");
  }

  @Test
  void severalMessagesInOneDatagramAreAllRead() {
    ByteBuffer a = closed().get(0);
    ByteBuffer b = closed().get(2);
    ByteBuffer both = ByteBuffer.allocate(a.remaining() + b.remaining()).put(a).put(b).flip();
    assertThat(ConntrackEvent.parse(both, RECEIVED)).extracting(ConntrackEvent::type)
        .containsExactly(ConntrackEvent.Type.NEW, ConntrackEvent.Type.DESTROY);
  }

  @Test
  void aMessageCutShortIsRefusedWithWhatIsWrong() {
    ByteBuffer whole = closed().get(2);
    ByteBuffer cut = ByteBuffer.wrap(whole.array(), 0, whole.remaining() - 40).slice();
    assertThatThrownBy(() -> ConntrackEvent.parse(cut, RECEIVED)).isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("netlink message of");
  }
}
