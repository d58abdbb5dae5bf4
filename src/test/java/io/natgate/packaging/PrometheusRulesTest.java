package io.natgate.packaging;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.natgate.testing.ControlPlane;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * config/prometheus/rules.yaml through Prometheus's own rule checker: {@code promtool check rules}, and
 * {@code promtool test rules} with src/test/resources/prometheus/rules-test.yaml, which makes every alert fire (and
 * not fire) on synthetic series. promtool is built from its Go module (make promtool); skipped, with the reason,
 * where it could not be built.
 */
class PrometheusRulesTest {
  static final Path RULES = Path.of("config/prometheus/rules.yaml");
  static final Path PROMTOOL = ControlPlane.tool("promtool");

  @Test
  void promtoolAcceptsTheRulesAndEveryAlertPassesItsUnitTest(@TempDir Path dir) throws Exception {
    assumeTrue(Files.isExecutable(PROMTOOL), "no promtool at " + PROMTOOL + " (make promtool builds it from "
        + "github.com/prometheus/prometheus with Go): skipped");
    // A PrometheusRule's spec is a Prometheus rule file (JSON is YAML).
    Files.writeString(dir.resolve("natgate.rules.yaml"), new ObjectMapper().writeValueAsString(spec()));
    Files.writeString(dir.resolve("rules-test.yaml"), unitTests());

    String checked = promtool(dir, "check", "rules", "natgate.rules.yaml");
    assertThat(checked).contains("SUCCESS: " + alerts(spec()).size() + " rules found");
    String tested = promtool(dir, "test", "rules", "rules-test.yaml");
    assertThat(tested).contains("SUCCESS");
  }

  @Test
  void everyAlertHasAUnitTest() throws IOException {
    TreeSet<String> tested = new TreeSet<>();
    for (String line : unitTests().split("\n")) {
      if (line.trim().startsWith("alertname:")) {
        tested.add(line.trim().substring("alertname:".length()).trim());
      }
    }
    assertThat(tested).isEqualTo(new TreeSet<>(alerts(spec())));
  }

  /** The rules and the Grafana dashboard name only metrics docs/metrics.md documents (so, that natgate exports). */
  @Test
  void theRulesAndTheDashboardUseOnlyDocumentedMetrics() throws IOException {
    String documented = Files.readString(Path.of("docs/metrics.md"));
    var dashboard = new ObjectMapper().readTree(Path.of("config/prometheus/grafana-dashboard.json").toFile());
    List<String> expressions = new java.util.ArrayList<>();
    dashboard.path("panels").forEach(panel -> panel.path("targets").forEach(t -> expressions.add(t.path("expr").asText())));
    assertThat(expressions).as("dashboard queries").hasSizeGreaterThan(10);
    Yaml.list(spec(), "groups").forEach(g -> Yaml.list(g, "rules").forEach(r -> expressions.add((String) r.get("expr"))));
    var names = new TreeSet<String>();
    var metric = java.util.regex.Pattern.compile("natgate_[a-z_]+");
    expressions.forEach(e -> metric.matcher(e).results().forEach(m -> names.add(
        m.group().replaceAll("_(bucket|count|sum)$", ""))));
    assertThat(names).hasSizeGreaterThan(10).allSatisfy(n -> assertThat(documented).contains("`" + n + "`"));
  }

  static Map<String, Object> spec() {
    List<Map<String, Object>> docs = Yaml.readAll(RULES);
    assertThat(docs).singleElement().satisfies(d -> assertThat(d.get("kind")).isEqualTo("PrometheusRule"));
    return Yaml.at(docs.get(0), "spec");
  }

  static List<String> alerts(Map<String, Object> spec) {
    return Yaml.list(spec, "groups").stream().flatMap(g -> Yaml.list(g, "rules").stream())
        .map(r -> (String) r.get("alert")).filter(Objects::nonNull).toList();
  }

  static String unitTests() throws IOException {
    try (InputStream in = PrometheusRulesTest.class.getResourceAsStream("/prometheus/rules-test.yaml")) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
  }

  /** Runs promtool in {@code dir}: its output; fails the test with the output when it exits non-zero. */
  static String promtool(Path dir, String... args) throws Exception {
    List<String> command = new java.util.ArrayList<>(List.of(PROMTOOL.toString()));
    command.addAll(List.of(args));
    Process p = new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as("promtool %s:%n%s", String.join(" ", args), out).isZero();
    return out;
  }
}
