package io.natgate.testing;

import io.fabric8.kubernetes.client.ConfigBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.natgate.agent.Agent;
import io.natgate.agent.Heartbeat;
import io.natgate.connlog.ConnectionLog;
import io.natgate.dataplane.Kernel;
import io.natgate.lab.LabNode;
import io.natgate.lab.NetworkLab;
import java.nio.file.Path;
import java.time.Duration;

/**
 * A node agent in this JVM for a lab node: its kernel commands run in the node's namespace, it acts as the agent
 * ServiceAccount, and its heartbeat goes through {@code link}, which a test can cut. Settings are the defaults.
 */
public final class LabAgent {
  public static final Duration HEARTBEAT_TIMEOUT = Duration.ofMillis(900);
  public static final Duration FENCE_AFTER = Duration.ofMillis(600);

  private LabAgent() {
  }

  public static Agent start(ControlPlane cp, NetworkLab lab, LabNode n, TcpProxy link) {
    return start(cp, lab, n, link, null);
  }

  /** @param connectionLog where the node's connection log goes (null: none) */
  public static Agent start(ControlPlane cp, NetworkLab lab, LabNode n, TcpProxy link, Path connectionLog) {
    KubernetesClient client = cp.clientFor(ControlPlane.OPERATOR_NAMESPACE, "natgate-agent");
    KubernetesClient heartbeat = Heartbeat.client(new ConfigBuilder(client.getConfiguration())
        .withMasterUrl("https://127.0.0.1:" + link.port()).build(), FENCE_AFTER);
    return new Agent(client, heartbeat, new Agent.Settings(n.name(), n.ip(), null, ControlPlane.OPERATOR_NAMESPACE,
        Duration.ofMillis(200), HEARTBEAT_TIMEOUT, FENCE_AFTER, Duration.ofSeconds(10), 4790, 0x0ff00000, 7400, 7400),
        new Kernel(lab.nsCommandPrefix(n.ns())), new SimpleMeterRegistry())
        .withConnectionLog(connectionLog == null ? null : toFile(connectionLog)).start();
  }

  private static ConnectionLog.Settings toFile(Path file) {
    var d = ConnectionLog.Settings.defaults();
    return new ConnectionLog.Settings(file, d.maxFileBytes(), d.keepFiles(), d.queueSize(), d.socketBufferBytes());
  }
}
