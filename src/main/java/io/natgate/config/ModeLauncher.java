package io.natgate.config;

import io.fabric8.kubernetes.client.KubernetesClient;
import io.micrometer.core.instrument.MeterRegistry;
import io.natgate.agent.Agent;
import io.natgate.agent.Heartbeat;
import io.natgate.connlog.ConnectionLog;
import io.natgate.dataplane.Kernel;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.nio.file.Path;
import java.util.List;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import io.javaoperatorsdk.operator.Operator;
import io.smallrye.health.api.HealthGroup;

/**
 * Starts the node agent when the application runs in agent mode ({@code QUARKUS_PROFILE=agent}), the operator
 * otherwise. The agent's readiness ({@code /q/health/group/agent}): it has applied its node's current state.
 */
@ApplicationScoped
@HealthGroup("agent")
public class ModeLauncher implements HealthCheck {
  @Inject
  NatgateConfig config;
  @Inject
  KubernetesClient client;
  @Inject
  MeterRegistry metrics;
  @Inject
  Operator operator;
  private volatile Agent agent;

  void start(@Observes StartupEvent event) {
    if (!"agent".equals(config.mode())) {
      operator.start(); // leader election, informers, reconciler: as the operator SDK would have started it
      return;
    }
    var a = config.agent();
    var h = config.heartbeat();
    String node = a.nodeName().orElseThrow(() -> new IllegalStateException(
        "natgate.agent.node-name (NATGATE_AGENT_NODE_NAME, from spec.nodeName) is required in agent mode"));
    KubernetesClient heartbeatClient = Heartbeat.client(client.getConfiguration(), h.fenceAfter());
    var settings = new Agent.Settings(node, a.nodeIp().orElse(null), a.uplink().orElse(null), h.namespace(),
        h.renewInterval(), h.timeout(), h.fenceAfter(), a.repairInterval(), a.tunnelPort(),
        (int) (long) Long.decode(a.markMask()), a.tableBase(), a.rulePriority());
    var log = a.connectionLog();
    var logSettings = new ConnectionLog.Settings(log.file().map(Path::of).orElse(null), log.maxFileBytes(),
        log.keepFiles(), log.queueSize(), log.socketBufferBytes());
    agent = new Agent(client, heartbeatClient, settings, new Kernel(List.of()), metrics).withConnectionLog(logSettings)
        .start();
  }

  void stop(@Observes ShutdownEvent event) {
    if (agent != null) {
      agent.close(); // the kernel state stays: traffic keeps flowing while a new agent starts
    } else {
      operator.stop(); // informers and the leader Lease, which a replacement then takes without waiting it out
    }
  }

  @Override
  public HealthCheckResponse call() {
    var response = HealthCheckResponse.named("natgate-agent");
    if (!"agent".equals(config.mode())) {
      return response.up().withData("mode", "operator").build();
    }
    Agent a = agent;
    boolean ready = a != null && a.ready();
    response.status(ready).withData("mode", "agent");
    if (a != null && a.lastError() != null) {
      response.withData("error", a.lastError());
    }
    return response.build();
  }
}
