package io.natgate.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.fabric8.kubernetes.api.model.Condition;
import io.fabric8.kubernetes.api.model.Event;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.natgate.Defaults;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.lab.LabNode;
import io.natgate.lab.NetworkLab;
import io.natgate.testing.ControlPlane;
import io.natgate.testing.ControlPlaneExtension;
import java.io.InputStream;
import java.nio.file.Files;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer.OrderAnnotation;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * What the people who run natgate see, with the operator and agents as processes on the network lab: the agents'
 * SNAT ports narrowed to 100 (natgate.agent.snat-ports), a pod that opens 90 connections to one destination raises
 * the gateway's SNATPortPressure condition and a Warning Event, and both clear when the connections are gone; the
 * operator's and the agents' /q/metrics move with connections and a failover. Needs root.
 */
@ExtendWith(ControlPlaneExtension.class)
@TestMethodOrder(OrderAnnotation.class)
class OperationsE2E {
  static final String EGRESS_IP = "198.18.0.100";
  static final String SNAT_PORTS = "20000-20099";
  /** TIME_WAIT on the gateway nodes: connections (and their port use) end this long after they close. */
  static final int TIME_WAIT_SECONDS = 30;
  static final int SERVER_PORT = 9100;

  @RegisterExtension
  static final NetworkLab lab = NetworkLab.withNodes(2).podsPerNode(1);

  static EndToEnd e2e;
  static KubernetesClient admin;

  @BeforeAll
  static void start(ControlPlane cp) throws Exception {
    if (!lab.started()) {
      return; // each test is reported skipped with the lab's reason
    }
    for (LabNode n : lab.nodes()) {
      lab.exec(n.ns(), "sysctl", "-q", "-w", "net.netfilter.nf_conntrack_tcp_timeout_time_wait=" + TIME_WAIT_SECONDS);
    }
    admin = cp.admin();
    e2e = new EndToEnd(lab, cp).withAgentEnv(Map.of("NATGATE_AGENT_SNAT_PORTS", SNAT_PORTS)).start();
    // Not EndToEndE2E's namespace "payments": it may still be terminating (the sample selects by label)
    e2e.cluster().namespace("operations", Map.of("team", "payments"));
    e2e.cluster().runningPod("operations", lab.pod(1, 1).name(), lab.node(1).name(), lab.pod(1, 1).ip(), Map.of());
    try (InputStream sample = Files.newInputStream(ControlPlane.repo().resolve("config/samples/egressgateway.yaml"))) {
      admin.load(sample).create();
    }
    await().atMost(Duration.ofSeconds(90)).until(() -> "True".equals(condition("Ready"))
        && "True".equals(condition("Programmed")));
  }

  @AfterAll
  static void stop() throws Exception {
    if (e2e != null) {
      e2e.closeDeleting("payments", "operations");
    }
  }

  @Test
  @Order(1)
  void ninetyConnectionsToOneDestinationOnAHundredPortsRaiseTheConditionAndAWarningThenBothClear() throws Exception {
    LabNode holder = holder();
    double startedBefore = metric(e2e.agentMetrics(holder), "natgate_agent_connections_started_total",
        "gateway", "payments", "egress_ip", EGRESS_IP);
    Process server = lab.startConnectServer(SERVER_PORT);
    try {
      JsonNode made = new ObjectMapper().readTree(lab.connectClient(lab.pod(1, 1).ns(), "--to", NetworkLab.EXTERNAL_IP,
          "--port", String.valueOf(SERVER_PORT), "--count", "90", "--threads", "6"));
      assertThat(made.path("ok").asInt()).as("connections made: %s", made).isEqualTo(90);
      long t0 = System.nanoTime();
      try {
        await("the holder's agent to count the connections").atMost(Duration.ofSeconds(15))
            .pollInterval(Duration.ofMillis(200)).until(() -> metric(e2e.agentMetrics(holder),
                "natgate_agent_connections_started_total", "gateway", "payments", "egress_ip", EGRESS_IP)
                - startedBefore >= 90);
      } catch (org.awaitility.core.ConditionTimeoutException e) {
        throw new AssertionError("the agent of " + holder.name() + " did not count the 90 connections: "
            + e2e.agentMetrics(holder).lines().filter(l -> l.startsWith("natgate_agent_conn")).toList(), e);
      }
      await("the condition").atMost(Duration.ofSeconds(TIME_WAIT_SECONDS - 5)).pollInterval(Duration.ofMillis(200))
          .until(() -> "True".equals(condition("SNATPortPressure")));
      System.out.printf("SNATPortPressure raised %d ms after the 90th connection: %s%n",
          (System.nanoTime() - t0) / 1_000_000, message("SNATPortPressure"));
      assertThat(message("SNATPortPressure")).contains(EGRESS_IP + " to tcp " + NetworkLab.EXTERNAL_IP + ":"
          + SERVER_PORT, "on " + holder.name());
      await("the Warning Event").atMost(Duration.ofSeconds(10))
          .until(() -> events("SNATPortPressure").stream().anyMatch(e -> "Warning".equals(e.getType())));

      String agent = e2e.agentMetrics(holder);
      assertThat(metric(agent, "natgate_agent_connections_started_total", "gateway", "payments", "egress_ip", EGRESS_IP)
          - startedBefore).as("connections started").isGreaterThanOrEqualTo(90);
      assertThat(metric(agent, "natgate_agent_connections_active", "gateway", "payments", "egress_ip", EGRESS_IP))
          .isGreaterThanOrEqualTo(90);
      assertThat(metric(agent, "natgate_agent_snat_port_use_ratio", "gateway", "payments", "egress_ip", EGRESS_IP))
          .as("90 of 100 ports").isGreaterThanOrEqualTo(0.9);
      assertThat(metric(e2e.operatorMetrics(), "natgate_operator_snat_port_pressure", "gateway", "payments"))
          .isEqualTo(1);

      await("the condition to clear").atMost(Duration.ofSeconds(TIME_WAIT_SECONDS + 60))
          .pollInterval(Duration.ofMillis(500)).until(() -> "False".equals(condition("SNATPortPressure")));
      // Events follow the status write (only a written change is announced): wait for it, then count.
      await("the Normal Event").atMost(Duration.ofSeconds(10))
          .until(() -> !events("SNATPortPressureCleared").isEmpty());
      assertThat(events("SNATPortPressureCleared")).as("cleared once").hasSize(1)
          .allSatisfy(e -> assertThat(e.getType()).isEqualTo("Normal"));
      assertThat(events("SNATPortPressure")).as("raised once: no flapping").hasSize(1);
      agent = e2e.agentMetrics(holder);
      assertThat(metric(agent, "natgate_agent_connection_bytes_total", "gateway", "payments", "egress_ip", EGRESS_IP,
          "direction", "in")).as("bytes of the ended connections").isGreaterThanOrEqualTo(90);
      assertThat(metric(agent, "natgate_agent_connections_active", "gateway", "payments", "egress_ip", EGRESS_IP))
          .isZero();
      assertThat(metric(agent, "natgate_agent_connlog_records_dropped_total")).as("no record dropped").isZero();
      assertThat(metric(e2e.operatorMetrics(), "natgate_operator_snat_port_pressure", "gateway", "payments")).isZero();
    } finally {
      server.getOutputStream().close();
      server.waitFor();
    }
  }

  @Test
  @Order(2)
  void aKilledHoldersFailoverIsTimedOnTheOperatorAndTheNewHolderApplies() throws Exception {
    LabNode holder = holder();
    LabNode standby = lab.nodes().stream().filter(n -> n != holder).findFirst().orElseThrow();
    String before = e2e.operatorMetrics();
    assertThat(metric(before, "natgate_operator_gateway_ready", "gateway", "payments")).isEqualTo(1);
    assertThat(metric(before, "natgate_operator_gateway_live_candidates", "gateway", "payments")).isEqualTo(2);
    assertThat(metric(before, "natgate_operator_egress_ip_holders", "gateway", "payments", "egress_ip", EGRESS_IP))
        .isEqualTo(1);
    double failovers = metric(before, "natgate_operator_failover_seconds_count", "gateway", "payments");
    double applies = metric(e2e.agentMetrics(standby), "natgate_agent_apply_seconds_count");

    e2e.killAgent(holder);
    await("the operator to time the failover").atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(200))
        .until(() -> metric(e2e.operatorMetrics(), "natgate_operator_failover_seconds_count", "gateway", "payments")
            > failovers);
    String after = e2e.operatorMetrics();
    assertThat(holder().name()).isEqualTo(standby.name());
    assertThat(metric(after, "natgate_operator_failovers_total", "gateway", "payments")).isEqualTo(failovers + 1);
    assertThat(metric(after, "natgate_operator_failover_seconds_bucket", "gateway", "payments", "le", "30.0"))
        .isEqualTo(failovers + 1);
    assertThat(metric(after, "natgate_operator_gateway_live_candidates", "gateway", "payments")).isEqualTo(1);
    assertThat(metric(e2e.agentMetrics(standby), "natgate_agent_apply_seconds_count")).isGreaterThan(applies);
    System.out.printf("failover as the operator timed it: %.3f s%n",
        metric(after, "natgate_operator_failover_seconds_sum", "gateway", "payments"));
    assertThat(after).as("no pod address as a label value").doesNotContain(lab.pod(1, 1).ip());
  }

  static EgressGateway gateway() {
    return admin.resources(EgressGateway.class).withName("payments").get();
  }

  static LabNode holder() {
    String node = gateway().getStatus().assignments.get(0).node;
    return lab.nodes().stream().filter(n -> n.name().equals(node)).findFirst().orElseThrow();
  }

  static Optional<Condition> find(String type) {
    EgressGateway g = gateway();
    return g == null || g.getStatus() == null ? Optional.empty()
        : g.getStatus().conditions.stream().filter(c -> type.equals(c.getType())).findFirst();
  }

  static String condition(String type) {
    return find(type).map(Condition::getStatus).orElse(null);
  }

  static String message(String type) {
    return find(type).map(Condition::getMessage).orElse(null);
  }

  static List<Event> events(String reason) {
    return admin.v1().events().inNamespace(Defaults.EVENT_NAMESPACE).list().getItems().stream()
        .filter(e -> "payments".equals(e.getInvolvedObject().getName()) && reason.equals(e.getReason())).toList();
  }

  /** The sum of the samples of {@code name} whose labels include {@code labels} (name, value, ...); 0 if none. */
  static double metric(String text, String name, String... labels) {
    double sum = 0;
    Pattern sample = Pattern.compile("^" + Pattern.quote(name) + "(\\{[^}]*\\})?\\s+(\\S+)$", Pattern.MULTILINE);
    Matcher m = sample.matcher(text);
    outer:
    while (m.find()) {
      String set = m.group(1) == null ? "" : m.group(1);
      for (int i = 0; i < labels.length; i += 2) {
        if (!set.contains(labels[i] + "=\"" + labels[i + 1] + "\"")) {
          continue outer;
        }
      }
      sum += Double.parseDouble(m.group(2));
    }
    return sum;
  }
}
