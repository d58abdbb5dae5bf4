package io.natgate.launch;

import static org.assertj.core.api.Assertions.assertThat;

import io.natgate.config.NatgateConfig;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

class AgentProcessTest {
  @Test
  void logCategoriesComeFromPropertiesAndEnvironmentVariables() {
    assertThat(AgentProcess.logCategories(List.of("quarkus.log.category.\"io.fabric8\".level",
        "QUARKUS_LOG_CATEGORY__IO_NATGATE__LEVEL", "quarkus.log.level", "natgate.agent.node-name",
        "quarkus.log.category.\"io.natgate\".min-level"))).containsExactly("io.fabric8", "io.natgate");
  }

  @Test
  void theAgentProfileSelectsAgentModeAndItsPortWithQuarkusDurations() {
    System.setProperty("quarkus.profile", "agent");
    System.setProperty("natgate.heartbeat.fence-after", "2s");
    try {
      var config = AgentProcess.config();
      assertThat(AgentProcess.agentMode(config)).isTrue();
      assertThat(AgentProcess.natgate(config).mode()).isEqualTo("agent");
      assertThat(config.getValue("quarkus.http.port", Integer.class)).isEqualTo(9741);
      assertThat(AgentProcess.natgate(config).heartbeat().fenceAfter()).isEqualTo(Duration.ofSeconds(2));
    } finally {
      System.clearProperty("quarkus.profile");
      System.clearProperty("natgate.heartbeat.fence-after");
    }
    var operator = AgentProcess.config();
    assertThat(AgentProcess.agentMode(operator)).isFalse();
    assertThat(AgentProcess.natgate(operator).mode()).isEqualTo("operator");
  }

  @Test
  void healthBodiesAreSmallRyeHealthsShape() {
    assertThat(AgentEndpoints.body(false,
        List.of(new AgentLauncher.Health("natgate-agent", false, "agent", "403 \"no\""))))
        .isEqualToIgnoringWhitespace("""
            {"status": "DOWN", "checks": [{"name": "natgate-agent", "status": "DOWN",
             "data": {"mode": "agent", "error": "403 \\"no\\""}}]}""");
    assertThat(AgentEndpoints.body(true, List.of(new AgentLauncher.Health("natgate-agent-watch", true, null, null))))
        .isEqualToIgnoringWhitespace("""
            {"status": "UP", "checks": [{"name": "natgate-agent-watch", "status": "UP"}]}""");
  }

  @Test
  void quarkusSettingsTheAgentDoesNotReadAreNamed() {
    assertThat(AgentProcess.ignoredQuarkusSettings(
        List.of("quarkus.http.port", "quarkus.log.category.\"io.natgate\".level", "quarkus.http.host",
            "quarkus.kubernetes-client.trust-certs", "quarkus.kubernetes-client.proxy", "natgate.mode", "java.home"),
        List.of("QUARKUS_PROFILE", "QUARKUS_LOG_LEVEL", "QUARKUS_LOG_CATEGORY__IO_FABRIC8__LEVEL",
            "QUARKUS_KUBERNETES_CLIENT_API_SERVER_URL", "QUARKUS_LOG_CONSOLE_JSON", "QUARKUS_HTTP_ROOT_PATH",
            "NATGATE_AGENT_NODE_NAME", "PATH")))
        .containsExactly("QUARKUS_HTTP_ROOT_PATH", "QUARKUS_LOG_CONSOLE_JSON", "quarkus.http.host",
            "quarkus.kubernetes-client.proxy");
  }
}
