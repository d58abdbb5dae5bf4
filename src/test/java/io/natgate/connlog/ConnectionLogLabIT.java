package io.natgate.connlog;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.natgate.api.v1alpha1.ConnectionLogState;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.api.v1alpha1.NodeGatewayState.Snat;
import io.natgate.api.v1alpha1.NodeGatewayState.Steer;
import io.natgate.dataplane.DataplaneSettings;
import io.natgate.dataplane.Kernel;
import io.natgate.dataplane.KernelPlan;
import io.natgate.dataplane.NodeDataplane;
import io.natgate.dataplane.Renderer;
import io.natgate.lab.LabPod;
import io.natgate.lab.NetworkLab;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The connection log with real connections: node-1 is the gateway of "payments" (egress IP 198.18.0.100) for
 * pod-1-1 (on it), pod-2-1 and pod-2-2 (on node-2, steered through the tunnel); pod-1-2 is selected by no gateway.
 * The operator named pod-1-1 and pod-2-1 in node-1's state, not pod-2-2 (as if deleted meanwhile). The log runs as
 * the agent runs it, with conntrack in node-1's namespace, writing to a file. Needs root; skipped otherwise.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ConnectionLogLabIT {
  static final String EGRESS_IP = "198.18.0.100";
  /** Each test has a server port of its own: the other test's connections may still end during it. */
  static final java.util.concurrent.atomic.AtomicInteger NEXT_PORT = new java.util.concurrent.atomic.AtomicInteger(9000);
  static final ObjectMapper JSON = new ObjectMapper();

  @RegisterExtension
  static final NetworkLab lab = NetworkLab.withNodes(2).podsPerNode(2);

  @TempDir
  Path dir;
  SimpleMeterRegistry registry = new SimpleMeterRegistry();
  NodeDataplane gateway;
  NodeDataplane director;
  ConnectionLog log;
  Path file;
  Process server;
  int port;

  @BeforeEach
  void start() {
    // Records end when conntrack forgets a connection: after TIME_WAIT (120 s by default; 1 s here).
    lab.exec(lab.node(1).ns(), "sysctl", "-q", "-w", "net.netfilter.nf_conntrack_tcp_timeout_time_wait=1");
    gateway = dataplane(1);
    director = dataplane(2);
    file = dir.resolve("connections.log");
    var defaults = ConnectionLog.Settings.defaults();
    log = new ConnectionLog(new Kernel(lab.nsCommandPrefix(lab.node(1).ns())), lab.node(1).name(),
        new ConnectionLog.Settings(file, defaults.maxFileBytes(), defaults.keepFiles(), defaults.queueSize(),
            defaults.socketBufferBytes()), registry);
    Map<String, NodeGatewayState> gw = payments(true);
    log.update(gw);
    gateway.apply(Renderer.render(gw, gateway.settings()));
    director.apply(Renderer.render(payments(false), director.settings()));
    port = NEXT_PORT.getAndIncrement();
    server = lab.startConnectServer(port);
  }

  @AfterEach
  void stop() throws Exception {
    server.getOutputStream().close(); // it exits at the end of its input
    server.waitFor();
    log.close();
    gateway.apply(KernelPlan.EMPTY);
    director.apply(KernelPlan.EMPTY);
    gateway.close();
    director.close();
  }

  NodeDataplane dataplane(int node) {
    return new NodeDataplane(new Kernel(lab.nsCommandPrefix(lab.node(node).ns())),
        DataplaneSettings.defaults(lab.node(node).uplink()));
  }

  /** node-1's part (the gateway) or node-2's (steering its two pods to node-1). */
  Map<String, NodeGatewayState> payments(boolean onGateway) {
    var s = new NodeGatewayState();
    s.cidrs = List.of("0.0.0.0/0");
    s.excludedCidrs = List.of(NetworkLab.POD_CIDR);
    List<String> selected = List.of(lab.pod(1, 1).ip(), lab.pod(2, 1).ip(), lab.pod(2, 2).ip());
    if (onGateway) {
      s.snat.add(new Snat(EGRESS_IP, true, selected));
      s.connectionLog = new ConnectionLogState(new TreeMap<>(Map.of(lab.pod(1, 1).ip(), "shop/api-1",
          lab.pod(2, 1).ip(), "shop/api-2")));
    } else {
      s.steer.add(new Steer(EGRESS_IP, lab.node(1).name(), lab.node(1).ip(),
          List.of(lab.pod(2, 1).ip(), lab.pod(2, 2).ip())));
    }
    return new TreeMap<>(Map.of("payments", s));
  }

  /** What connect.py reported. */
  record Made(int ok, int failed, double seconds, List<Integer> ports) {
  }

  CompletableFuture<Made> connect(LabPod pod, String... args) {
    List<String> all = new ArrayList<>(List.of("--to", NetworkLab.EXTERNAL_IP, "--port", String.valueOf(port)));
    all.addAll(List.of(args));
    return CompletableFuture.supplyAsync(() -> {
      try {
        JsonNode r = JSON.readTree(lab.connectClient(pod.ns(), all.toArray(String[]::new)));
        List<Integer> ports = new ArrayList<>();
        r.path("ports").forEach(p -> ports.add(p.asInt()));
        return new Made(r.path("ok").asInt(), r.path("failed").asInt(), r.path("seconds").asDouble(), ports);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    });
  }

  /** This test's records (to its server's port). */
  List<JsonNode> records() {
    try {
      List<JsonNode> records = new ArrayList<>();
      for (String line : Files.readAllLines(file)) {
        JsonNode r = JSON.readTree(line);
        if (r.path("dstPort").asInt() == port) {
          records.add(r);
        }
      }
      return records;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static List<JsonNode> of(List<JsonNode> records, LabPod pod, String event) {
    return records.stream().filter(r -> r.path("srcIP").asText().equals(pod.ip()) && r.path("event").asText()
        .equals(event)).toList();
  }

  double metric(String name) {
    return registry.find(name).counters().stream().mapToDouble(c -> c.count()).sum();
  }

  @Test
  @Order(1)
  void everyConnectionHasAStartAndAnEndRecordWithItsPodEgressIPDestinationAndBytes() throws Exception {
    var onGateway = connect(lab.pod(1, 1), "--count", "10", "--send", "1000", "--reply", "300", "--ports");
    var steered = connect(lab.pod(2, 1), "--count", "10", "--send", "5000", "--reply", "100", "--ports");
    var unnamed = connect(lab.pod(2, 2), "--count", "5", "--ports");
    var unselected = connect(lab.pod(1, 2), "--count", "5");
    Map<LabPod, Made> made = Map.of(lab.pod(1, 1), onGateway.join(), lab.pod(2, 1), steered.join(),
        lab.pod(2, 2), unnamed.join());
    assertThat(unselected.join().ok()).isEqualTo(5);
    made.values().forEach(m -> assertThat(m.failed()).isZero());

    // An end comes when the kernel forgets the connection: after TIME_WAIT, at its next garbage collection.
    await().atMost(Duration.ofSeconds(240)).pollInterval(Duration.ofSeconds(1)).untilAsserted(() -> {
      log.drain(Duration.ofSeconds(5));
      List<JsonNode> records = records();
      made.forEach((pod, m) -> assertThat(of(records, pod, "end")).hasSize(m.ok()));
    });
    List<JsonNode> records = records();
    assertThat(records).hasSize(2 * 25);
    assertThat(records).as("the pod no gateway selects").noneMatch(r -> r.path("srcIP").asText()
        .equals(lab.pod(1, 2).ip()));

    for (var e : made.entrySet()) {
      LabPod pod = e.getKey();
      for (String event : List.of("start", "end")) {
        List<JsonNode> rs = of(records, pod, event);
        assertThat(rs).extracting(r -> r.path("srcPort").asInt())
            .containsExactlyInAnyOrderElementsOf(e.getValue().ports());
        for (JsonNode r : rs) {
          assertThat(r.path("schema").asText()).isEqualTo(ConnectionRecord.SCHEMA);
          assertThat(r.path("node").asText()).isEqualTo("node-1");
          assertThat(r.path("gateway").asText()).isEqualTo("payments");
          assertThat(r.path("egressIP").asText()).isEqualTo(EGRESS_IP);
          assertThat(r.path("dstIP").asText()).isEqualTo(NetworkLab.EXTERNAL_IP);
          assertThat(r.path("dstPort").asInt()).isEqualTo(port);
          assertThat(r.path("protocol").asText()).isEqualTo("tcp");
          assertThat(r.path("translatedPort").asInt()).isPositive();
        }
      }
    }
    assertThat(of(records, lab.pod(1, 1), "start")).allSatisfy(r -> {
      assertThat(r.path("podNamespace").asText()).isEqualTo("shop");
      assertThat(r.path("podName").asText()).isEqualTo("api-1");
    });
    assertThat(of(records, lab.pod(2, 1), "end")).allSatisfy(r -> assertThat(r.path("podName").asText())
        .isEqualTo("api-2"));
    assertThat(of(records, lab.pod(2, 2), "end")).as("a source the state does not name: logged without a pod")
        .allSatisfy(r -> assertThat(r.has("podName")).isFalse());

    // Bytes are IP packet lengths: the payload (header line + body) plus 40 bytes of IP and TCP header per packet
    // and up to 20 of TCP options.
    for (var pod : List.of(lab.pod(1, 1), lab.pod(2, 1))) {
      int send = pod == lab.pod(1, 1) ? 1000 : 5000;
      int reply = pod == lab.pod(1, 1) ? 300 : 100;
      String header = send + " " + reply + "\n";
      assertThat(of(records, pod, "end")).allSatisfy(r -> {
        assertThat(r.path("endReason").asText()).isEqualTo("closed");
        assertThat(r.path("startTime").asText()).isNotEmpty();
        long outPayload = r.path("bytesOut").asLong() - 40 * r.path("packetsOut").asLong();
        long inPayload = r.path("bytesIn").asLong() - 40 * r.path("packetsIn").asLong();
        assertThat(outPayload).isBetween((long) send + header.length(),
            send + header.length() + 20 * r.path("packetsOut").asLong());
        assertThat(inPayload).isBetween((long) reply, reply + 20 * r.path("packetsIn").asLong());
      });
    }
    assertThat(metric("natgate_agent_connlog_records_dropped_total")).isZero();
    assertThat(metric("natgate_agent_connlog_events_lost_total")).isZero();
  }

  /**
   * The volume: 20,000 short connections in 10 s by three pods through one gateway, every record kept
   * under the default settings (counted against what the pods made).
   */
  @Test
  @Order(2)
  void twentyThousandShortConnectionsInTenSecondsKeepEveryRecord() throws Exception {
    List<LabPod> pods = List.of(lab.pod(1, 1), lab.pod(2, 1), lab.pod(2, 2));
    long started = System.nanoTime();
    Map<LabPod, CompletableFuture<Made>> running = pods.stream().collect(Collectors.toMap(p -> p,
        p -> connect(p, "--count", "6667", "--rate", "667", "--threads", "16")));
    Map<LabPod, Made> made = running.entrySet().stream().collect(Collectors.toMap(Map.Entry::getKey,
        e -> e.getValue().join()));
    double seconds = (System.nanoTime() - started) / 1e9;
    int total = made.values().stream().mapToInt(m -> m.ok() + m.failed()).sum();
    System.out.printf("volume: %d connections (%d failed) by %d pods in %.1f s: %.0f per second; load %s%n", total,
        made.values().stream().mapToInt(Made::failed).sum(), pods.size(), seconds, total / seconds,
        Files.readString(Path.of("/proc/loadavg")).trim());

    int expected = 2 * made.values().stream().mapToInt(m -> m.ok() + m.failed()).sum();
    long waited = System.nanoTime();
    await().atMost(Duration.ofSeconds(300)).pollInterval(Duration.ofSeconds(10)).untilAsserted(() -> {
      log.drain(Duration.ofSeconds(10));
      int written = records().size();
      System.out.printf("volume: %d of %d records after %d s%n", written, expected,
          (System.nanoTime() - waited) / 1_000_000_000L);
      assertThat(written >= expected || metric("natgate_agent_connlog_events_lost_total") > 0
          || metric("natgate_agent_connlog_records_dropped_total") > 0).isTrue();
    });
    List<JsonNode> records = records();
    for (LabPod pod : pods) {
      Made m = made.get(pod);
      // A failed attempt that got its SYN out is a connection too: the kernel tracked it.
      assertThat(of(records, pod, "start")).as("starts of " + pod.name()).hasSize(m.ok() + m.failed());
      assertThat(of(records, pod, "end")).as("ends of " + pod.name()).hasSize(m.ok() + m.failed());
    }
    System.out.printf("volume: %d records written, %.0f dropped, kernel reported lost events %.0f times%n",
        records.size(), metric("natgate_agent_connlog_records_dropped_total"),
        metric("natgate_agent_connlog_events_lost_total"));
    assertThat(metric("natgate_agent_connlog_records_dropped_total")).isZero();
    assertThat(metric("natgate_agent_connlog_events_lost_total")).isZero();
  }
}
