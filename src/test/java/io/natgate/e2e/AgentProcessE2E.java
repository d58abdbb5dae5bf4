package io.natgate.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.natgate.lab.LabNode;
import io.natgate.lab.NetworkLab;
import io.natgate.testing.ControlPlane;
import io.natgate.testing.ControlPlaneExtension;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer.OrderAnnotation;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The packaged application in agent mode ({@code QUARKUS_PROFILE=agent}, as the DaemonSet runs it) starts without
 * Quarkus's runtime, Vert.x or Netty (io.natgate.launch.Main: what they cost on every node, docs/benchmarks.md run 11)
 * and still answers the DaemonSet's probes and Prometheus on port 9741 as before: SmallRye Health's JSON with
 * 200/503, the Prometheus text with natgate's and the JVM's metrics. Needs root.
 */
@ExtendWith(ControlPlaneExtension.class)
@TestMethodOrder(OrderAnnotation.class)
class AgentProcessE2E {
  /** Packages whose classes the agent must not load: Quarkus's application runtime, CDI, HTTP server, health. */
  static final List<String> NOT_LOADED = List.of("io.vertx.", "io.netty.", "io.quarkus.arc.", "io.quarkus.vertx.http.",
      "io.quarkus.runtime.Application", "io.smallrye.health.", "io.javaoperatorsdk.");

  @RegisterExtension
  static final NetworkLab lab = NetworkLab.withNodes(1).podsPerNode(1);

  static EndToEnd e2e;
  static Path classes;

  @BeforeAll
  static void start(ControlPlane cp) throws Exception {
    if (!lab.started()) {
      return; // each test is reported skipped with the lab's reason
    }
    classes = Files.createTempFile("natgate-agent-classes", ".log");
    e2e = new EndToEnd(lab, cp).withAgentEnv(Map.of("JAVA_TOOL_OPTIONS", "-Xlog:class+load=info:file=" + classes))
        .start();
  }

  @AfterAll
  static void stop() throws Exception {
    if (e2e != null) {
      e2e.close();
    }
    if (classes != null) {
      Files.deleteIfExists(classes);
    }
  }

  @Test
  @Order(2) // after it applied its node's state: what it loaded for that too
  void loadsNeitherQuarkusNorVertxNorNetty() throws Exception {
    List<String> loaded;
    try (Stream<String> lines = Files.lines(classes)) {
      loaded = lines.filter(l -> l.contains("[class,load] ")).map(l -> l.split("\\[class,load\\] ")[1].split(" ")[0])
          .toList();
    }
    System.out.printf("classes loaded by the agent: %d (%d of them io.quarkus, io.vertx, io.netty, io.smallrye)%n",
        loaded.size(), loaded.stream().filter(c -> c.matches("io\\.(quarkus|vertx|netty|smallrye)\\..*")).count());
    // The log is the agent's: its own classes and its HTTP client's are there.
    assertThat(loaded).contains("io.natgate.agent.Agent", "io.natgate.launch.AgentLauncher",
        "io.fabric8.kubernetes.client.jdkhttp.JdkHttpClientImpl");
    assertThat(loaded).filteredOn(c -> NOT_LOADED.stream().anyMatch(c::startsWith)).isEmpty();
  }

  @Test
  @Order(1)
  void answersTheProbesAndPrometheusAsBefore() throws Exception {
    LabNode n = lab.node(1);
    // Applied its node's (empty) state: ready.
    JsonNode ready = json(await().atMost(Duration.ofSeconds(60)).until(() -> get(n, "/q/health/group/agent"),
        r -> r.startsWith("200 ")));
    assertThat(ready.get("status").asText()).isEqualTo("UP");
    assertThat(ready.get("checks").get(0).get("name").asText()).isEqualTo("natgate-agent");
    assertThat(ready.get("checks").get(0).get("data").get("mode").asText()).isEqualTo("agent");

    String live = get(n, "/q/health/live");
    assertThat(live).startsWith("200 ");
    assertThat(json(live).get("checks").get(0).get("name").asText()).isEqualTo("natgate-agent-watch");
    assertThat(get(n, "/q/health/nothing")).startsWith("404 ");

    String metrics = e2e.agentMetrics(n);
    assertThat(metrics).contains("natgate_agent_apply_seconds_bucket{", "natgate_agent_heartbeat_age_seconds ",
        "jvm_memory_used_bytes{", "process_cpu_usage ");
  }

  /** "STATUS BODY" of a GET from the node's namespace (503 included). */
  private static String get(LabNode n, String path) {
    return lab.exec(n.ns(), lab.python(), "-c", """
        import sys, urllib.request, urllib.error
        try:
            r = urllib.request.urlopen(sys.argv[1], timeout=10); code, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            code, body = e.code, e.read()
        sys.stdout.write(str(code) + " " + body.decode())
        """, "http://" + n.ip() + ":9741" + path);
  }

  private static JsonNode json(String response) throws Exception {
    return new ObjectMapper().readTree(response.substring(response.indexOf(' ') + 1));
  }
}
