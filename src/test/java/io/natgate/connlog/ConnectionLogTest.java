package io.natgate.connlog;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.natgate.dataplane.Kernel;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.time.Instant;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The queue and the writer, fed captured datagrams directly (no socket). */
class ConnectionLogTest {
  final SimpleMeterRegistry registry = new SimpleMeterRegistry();
  final Kernel noKernel = new Kernel(List.of("false"));

  ConnectionLog log(ConnectionLog.Settings settings, Sink sink) {
    var log = new ConnectionLog(noKernel, "node-1", settings, registry, sink);
    log.directory(Directory.of(Map.of("payments", TrackerTest.stateOf("198.18.5.1", "shop/api-1"))));
    return log;
  }

  double dropped(String reason) {
    return registry.find("natgate_agent_connlog_records_dropped_total").tag("reason", reason).counters().stream()
        .mapToDouble(c -> c.count()).sum();
  }

  @Test
  void writesOneJsonObjectPerLine() throws Exception {
    var out = new ByteArrayOutputStream();
    try (var log = log(ConnectionLog.Settings.defaults(), Sink.of(out))) {
      for (ByteBuffer datagram : ConntrackEventTest.closed()) {
        log.accept(datagram, Instant.now());
      }
      assertThat(log.drain(Duration.ofSeconds(5))).isTrue();
    }
    List<String> lines = out.toString(StandardCharsets.UTF_8).lines().toList();
    assertThat(lines).hasSize(3);
    JsonNode end = new ObjectMapper().readTree(lines.get(2));
    assertThat(end.path("event").asText()).isEqualTo("end");
    assertThat(end.path("podName").asText()).isEqualTo("api-1");
    assertThat(end.path("bytesIn").asLong()).isPositive();
    assertThat(end.has("tcpState")).isTrue();
    assertThat(new ObjectMapper().readTree(lines.get(0)).has("bytesIn")).as("null fields are left out").isFalse();
    assertThat(registry.get("natgate_agent_connlog_records_written_total").counter().count()).isEqualTo(3);
  }

  @Test
  void aClosedOutputCountsEveryRecordAsDroppedAndNeverBlocks() throws Exception {
    OutputStream closed = new OutputStream() {
      @Override
      public void write(int b) throws IOException {
        throw new IOException("Broken pipe");
      }
    };
    try (var log = log(ConnectionLog.Settings.defaults(), Sink.of(closed))) {
      for (int i = 0; i < 100; i++) {
        log.accept(ConntrackEventTest.closed().get(0), Instant.now());
      }
      assertThat(log.drain(Duration.ofSeconds(5))).isTrue();
    }
    assertThat(dropped("write_error")).isEqualTo(100);
  }

  @Test
  void anOutputThatBlocksFillsTheQueueAndTheRestIsCountedNotWaitedFor() throws Exception {
    var release = new CountDownLatch(1);
    OutputStream stuck = new OutputStream() {
      @Override
      public void write(int b) throws IOException {
        try {
          release.await();
        } catch (InterruptedException e) {
          throw new IOException(e);
        }
      }
    };
    var settings = new ConnectionLog.Settings(null, 0, 0, 10, 0);
    try (var log = log(settings, Sink.of(stuck))) {
      long start = System.nanoTime();
      for (int i = 0; i < 1000; i++) {
        log.accept(ConntrackEventTest.closed().get(0), Instant.now());
      }
      assertThat(Duration.ofNanos(System.nanoTime() - start)).as("accepting never waits").isLessThan(Duration.ofSeconds(2));
      // The writer may take up to FLUSH_EVERY records into its buffer before its flush blocks; ten wait in the queue.
      assertThat(dropped("queue_full")).as("all but the queue and one unflushed batch are dropped")
          .isGreaterThanOrEqualTo(1000 - 10 - ConnectionLog.FLUSH_EVERY - 1);
      release.countDown();
      assertThat(log.drain(Duration.ofSeconds(5))).isTrue();
    }
    assertThat(dropped("queue_full") + registry.get("natgate_agent_connlog_records_written_total").counter().count())
        .as("every record written or counted").isEqualTo(1000);
  }

  @Test
  void aFileIsRotatedBySize(@TempDir Path dir) throws Exception {
    Path file = dir.resolve("connections.log");
    var settings = new ConnectionLog.Settings(file, 2_000, 2, 1000, 0);
    try (var log = log(settings, Sink.rotatingFile(file, settings.maxFileBytes(), settings.keepFiles()))) {
      for (int i = 0; i < 40; i++) {
        log.accept(ConntrackEventTest.closed().get(0), Instant.now());
        if (i % 4 == 3) {
          assertThat(log.drain(Duration.ofSeconds(5))).isTrue(); // the size is checked when the writer flushes
        }
      }
    }
    assertThat(Files.list(dir).map(p -> p.getFileName().toString()).sorted().toList())
        .containsExactly("connections.log", "connections.log.1", "connections.log.2");
    assertThat(Files.size(file)).isLessThanOrEqualTo(2_000 + 4 * 400);
    assertThat(Files.readAllLines(file)).last().asString().contains("\"conntrackId\":39");
  }
}
