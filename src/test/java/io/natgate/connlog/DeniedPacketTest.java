package io.natgate.connlog;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.natgate.dataplane.Kernel;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** NFLOG messages of refused packets, as the kernel sends them (nfnetlink_log), and the denied records. */
class DeniedPacketTest {
  static final Instant NOW = Instant.parse("2026-11-30T01:00:00Z");

  /** One NFULNL_MSG_PACKET: a packet header, the prefix, and the first bytes of an IPv4 packet. */
  static byte[] message(String prefix, int protocol, String src, String dst, int srcPort, int dstPort) {
    ByteBuffer ip = ByteBuffer.allocate(24).order(ByteOrder.BIG_ENDIAN);
    ip.put((byte) 0x45).put((byte) 0).putShort((short) 60).putInt(0).put((byte) 64).put((byte) protocol)
        .putShort((short) 0).put(address(src)).put(address(dst)).putShort((short) srcPort).putShort((short) dstPort);
    byte[] text = (prefix + "\0").getBytes(StandardCharsets.US_ASCII);
    ByteBuffer m = ByteBuffer.allocate(256).order(ByteOrder.nativeOrder());
    m.putInt(0).putShort((short) 0x0400).putShort((short) 0).putInt(0).putInt(0); // nlmsghdr, length set below
    m.put((byte) 2).put((byte) 0).order(ByteOrder.BIG_ENDIAN).putShort((short) 7400).order(ByteOrder.nativeOrder());
    attribute(m, 1, new byte[] {8, 0, 3, 0}); // NFULA_PACKET_HDR: IPv4, hook FORWARD
    attribute(m, 10, text); // NFULA_PREFIX
    attribute(m, 9, ip.array()); // NFULA_PAYLOAD
    int length = m.position();
    m.putInt(0, length);
    byte[] out = new byte[length];
    m.flip().get(out);
    return out;
  }

  private static void attribute(ByteBuffer m, int type, byte[] value) {
    m.putShort((short) (4 + value.length)).putShort((short) type).put(value);
    m.position((m.position() + 3) & ~3);
  }

  private static byte[] address(String ip) {
    byte[] a = new byte[4];
    String[] f = ip.split("\\.");
    for (int i = 0; i < 4; i++) {
      a[i] = (byte) Integer.parseInt(f[i]);
    }
    return a;
  }

  static ByteBuffer datagram(byte[]... messages) {
    ByteBuffer b = ByteBuffer.allocate(4096);
    for (byte[] m : messages) {
      b.put(m);
    }
    return b.flip();
  }

  @Test
  void readsTheEgressIPFromThePrefixAndTheConnectionFromThePacket() {
    var packets = DeniedPacket.parse(datagram(
        message("natgate-denied 198.18.0.100", 6, "198.19.2.11", "203.0.113.200", 40001, 80),
        message("someone-else", 6, "198.19.2.11", "203.0.113.200", 40002, 80),
        message("natgate-denied 198.18.0.100", 17, "198.19.1.11", "203.0.113.200", 5353, 9999),
        message("natgate-denied 198.18.0.101", 1, "198.19.1.12", "192.0.2.1", 0x0800, 0)), NOW);
    assertThat(packets).containsExactly(
        new DeniedPacket(NOW, "198.18.0.100", "tcp", "198.19.2.11", 40001, "203.0.113.200", 80),
        new DeniedPacket(NOW, "198.18.0.100", "udp", "198.19.1.11", 5353, "203.0.113.200", 9999),
        new DeniedPacket(NOW, "198.18.0.101", "icmp", "198.19.1.12", null, "192.0.2.1", null));
  }

  @Test
  void aRetryingClientIsLimitedAndEveryRefusalIsStillCounted() throws Exception {
    var registry = new SimpleMeterRegistry();
    var out = new ByteArrayOutputStream();
    int sent = ConnectionLog.DENIED_BURST + 50;
    try (var log = new ConnectionLog(new Kernel(List.of("false")), "node-1", ConnectionLog.Settings.defaults(),
        registry, Sink.of(out))) {
      log.directory(Directory.of(Map.of("payments", TrackerTest.stateOf("198.18.0.100", "shop/api-1"))));
      log.namesFrom(address -> address.equals("203.0.113.200") ? "api.payments.example" : null);
      byte[] refused = message("natgate-denied 198.18.0.100", 6, "198.19.5.5", "203.0.113.200", 40001, 443);
      for (int i = 0; i < sent; i++) {
        log.acceptDenied(datagram(refused), NOW);
      }
      assertThat(log.drain(Duration.ofSeconds(5))).isTrue();
    }
    List<String> lines = out.toString(StandardCharsets.UTF_8).lines().toList();
    double limited = registry.find("natgate_agent_connlog_records_dropped_total").tag("reason", "rate_limit")
        .counter().count();
    // The bucket refills at DENIED_PER_SECOND while the loop runs: a few more than the burst may pass.
    assertThat(lines.size()).isBetween(ConnectionLog.DENIED_BURST, sent - 1);
    assertThat(lines.size() + limited).as("written or counted, never silent").isEqualTo(sent);
    assertThat(registry.get("natgate_agent_connections_denied_total").tag("gateway", "payments").counter().count())
        .isEqualTo(sent);
    JsonNode r = new ObjectMapper().readTree(lines.get(0));
    assertThat(r.path("event").asText()).isEqualTo("denied");
    assertThat(r.path("gateway").asText()).isEqualTo("payments");
    assertThat(r.path("egressIP").asText()).isEqualTo("198.18.0.100");
    assertThat(r.path("dstPort").asInt()).isEqualTo(443);
    assertThat(r.path("name").asText()).as("the name the DNS path knows the address by").isEqualTo("api.payments.example");
    assertThat(r.has("conntrackId")).isFalse();
    assertThat(r.has("translatedPort")).isFalse();
  }
}
