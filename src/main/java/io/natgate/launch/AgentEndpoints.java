package io.natgate.launch;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.micrometer.prometheus.PrometheusMeterRegistry;
import io.natgate.launch.AgentLauncher.Health;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.function.Supplier;

/**
 * The agent's HTTP port, on the JDK's server: the paths and answers the Quarkus application had (SmallRye Health's
 * JSON, 200 UP / 503 DOWN; Prometheus text on /q/metrics), which the DaemonSet's probes and Prometheus use.
 */
final class AgentEndpoints {
  private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
  private final HttpServer server;

  AgentEndpoints(InetSocketAddress address, AgentLauncher agent, PrometheusMeterRegistry metrics) {
    try {
      server = HttpServer.create(address, 0);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    health("/q/health/live", () -> List.of(agent.watching()));
    health("/q/health/ready", () -> List.of(agent.ready()));
    health("/q/health/group/agent", () -> List.of(agent.ready()));
    health("/q/health", () -> List.of(agent.watching(), agent.ready()));
    server.createContext("/q/metrics", exchange -> {
      String accept = exchange.getRequestHeaders().getFirst("Accept");
      String contentType = accept != null && accept.contains("application/openmetrics-text")
          ? "application/openmetrics-text; version=1.0.0; charset=utf-8" : "text/plain; version=0.0.4; charset=utf-8";
      respond(exchange, 200, contentType, metrics.scrape(contentType));
    });
    server.setExecutor(Executors.newSingleThreadExecutor(r -> {
      var t = new Thread(r, "natgate-http");
      t.setDaemon(true);
      return t;
    }));
  }

  AgentEndpoints start() {
    server.start();
    return this;
  }

  void stop() {
    server.stop(0);
  }

  private void health(String path, Supplier<List<Health>> checks) {
    server.createContext(path, exchange -> {
      if (!exchange.getRequestURI().getPath().equals(path)) { // a context matches its prefix
        respond(exchange, 404, "text/plain", "");
        return;
      }
      List<Health> results = checks.get();
      boolean up = results.stream().allMatch(Health::up);
      respond(exchange, up ? 200 : 503, "application/json; charset=UTF-8", body(up, results));
    });
  }

  /** As SmallRye Health writes it: status, then each check's name, status and data. */
  static String body(boolean up, List<Health> results) {
    var checks = results.stream().map(h -> {
      Map<String, Object> check = new LinkedHashMap<>();
      check.put("name", h.name());
      check.put("status", h.up() ? "UP" : "DOWN");
      Map<String, Object> data = new LinkedHashMap<>();
      if (h.mode() != null) {
        data.put("mode", h.mode());
      }
      if (h.error() != null) {
        data.put("error", h.error());
      }
      if (!data.isEmpty()) {
        check.put("data", data);
      }
      return check;
    }).toList();
    Map<String, Object> response = new LinkedHashMap<>();
    response.put("status", up ? "UP" : "DOWN");
    response.put("checks", checks);
    try {
      return JSON.writeValueAsString(response);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static void respond(HttpExchange exchange, int status, String contentType, String body) throws IOException {
    byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
    exchange.getResponseHeaders().set("Content-Type", contentType);
    exchange.sendResponseHeaders(status, bytes.length == 0 ? -1 : bytes.length);
    if (bytes.length > 0) {
      try (var out = exchange.getResponseBody()) {
        out.write(bytes);
      }
    }
    exchange.close();
  }
}
