package io.natgate.connlog;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.ByteBuffer;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The log's own JSON writer against Jackson with the record's annotations (the schema's documented form): the same
 * bytes for every kind of record, and for text no Kubernetes name has (quotes, backslashes, control characters,
 * characters beyond ASCII).
 */
class ConnectionRecordTest {
  static final ObjectMapper JACKSON = new ObjectMapper();

  static void sameAsJackson(ConnectionRecord r) throws Exception {
    assertThat(r.json()).isEqualTo(JACKSON.writeValueAsString(r));
  }

  @Test
  void startEndAndDeniedRecordsOfCapturedEvents() throws Exception {
    List<ConnectionRecord> records = new ArrayList<>();
    List<ByteBuffer> datagrams = new ArrayList<>(ConntrackEventTest.closed());
    datagrams.addAll(ConntrackEventTest.refused());
    for (ByteBuffer d : datagrams) {
      for (ConntrackEvent e : ConntrackEvent.parse(d, ConntrackEventTest.RECEIVED)) {
        records.add(ConnectionRecord.of(e, "node-1", "payments", "shop/api-1", "2026-11-29T23:00:00.123456789Z"));
        records.add(ConnectionRecord.of(e, "node-1", null, null, null)); // an unknown source, no start seen
      }
    }
    records.add(ConnectionRecord.of(TrackerTest.TCP_END, "node-1", "payments", "shop/api-1", "2026-11-29T23:00:00Z"));
    var denied = new DeniedPacket(Instant.parse("2026-11-30T01:02:03.004Z"), "198.18.0.101", "icmp", "198.19.1.12",
        null, "192.0.2.1", null);
    records.add(ConnectionRecord.denied(denied, "node-1", "payments", "shop/api-1", "api.example.com"));
    records.add(ConnectionRecord.denied(denied, "node-1", null, null, null));
    assertThat(records).hasSize(2 * 6 + 3);
    for (ConnectionRecord r : records) {
      sameAsJackson(r);
    }
    assertThat(records.get(0).json()).startsWith("{\"schema\":\"natgate.io/connection-log/v1\",\"event\":\"start\",");
  }

  @Test
  void textThatMustBeEscapedOrNot() throws Exception {
    StringBuilder every = new StringBuilder();
    for (char c = 0; c < 0x80; c++) {
      every.append(c);
    }
    for (String odd : List.of(every.toString(), "quote \" and \\ backslash", "é ü 名前 \u2028 \u00ff \ud83d\ude00",
        "", "\u007f")) {
      sameAsJackson(new ConnectionRecord(ConnectionRecord.SCHEMA, "denied", odd, odd, odd, "198.18.0.1", odd, odd,
          "tcp", "198.19.1.1", 1, null, "203.0.113.1", 443, null, null, null, null, null, null, null, null, null,
          odd));
    }
  }

  @Test
  void largestNumbers() throws Exception {
    sameAsJackson(new ConnectionRecord(ConnectionRecord.SCHEMA, "end", "t", "n", "g", "198.18.0.1", null, null,
        "udp", "198.19.1.1", 65535, 0, "203.0.113.1", 65535, 4_294_967_295L, "t", Long.MAX_VALUE, Long.MAX_VALUE,
        Long.MIN_VALUE, 0L, -1L, null, "timeout", null));
  }
}
