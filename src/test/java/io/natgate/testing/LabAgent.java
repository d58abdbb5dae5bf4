package io.natgate.testing;

import io.fabric8.kubernetes.client.ConfigBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.natgate.Defaults;
import io.natgate.agent.Agent;
import io.natgate.agent.Heartbeat;
import io.natgate.connlog.ConnectionLog;
import io.natgate.dataplane.IptablesBackend;
import io.natgate.dataplane.Kernel;
import io.natgate.lab.LabNode;
import io.natgate.lab.NetworkLab;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * A node agent in this JVM for a lab node: its kernel commands run in the node's namespace, it acts as the agent
 * ServiceAccount, and its heartbeat goes through {@code link}, which a test can cut. Settings are the defaults.
 */
public final class LabAgent {
  public static final Duration HEARTBEAT_TIMEOUT = Defaults.heartbeatTimeout();
  public static final Duration FENCE_AFTER = Defaults.fenceAfter();

  private LabAgent() {
  }

  /**
   * Waits until the node's agent has put in the base it keeps with no gateway (Renderer.base) into {@code backend}:
   * natgate's filter chain, the base's last step. Then a snapshot of the node is the base's.
   */
  public static void awaitBase(NetworkLab lab, LabNode n, IptablesBackend backend) {
    org.awaitility.Awaitility.await("the base on " + n.name()).atMost(Duration.ofSeconds(30))
        .pollInterval(Duration.ofMillis(50)).until(() -> lab.exec(n.ns(), backend.save(), "-t", "filter")
            .contains("-A NATGATE-FORWARD -i " + Defaults.TUNNEL_DEVICE + " -j DROP"));
  }

  public static Agent start(ControlPlane cp, NetworkLab lab, LabNode n, TcpProxy link) {
    return start(cp, lab, n, link, null);
  }

  /** @param connectionLog where the node's connection log goes (null: none) */
  public static Agent start(ControlPlane cp, NetworkLab lab, LabNode n, TcpProxy link, Path connectionLog) {
    return create(cp, lab, n, link).withConnectionLog(connectionLog == null ? null : toFile(connectionLog)).start();
  }

  /** The same, also answering the natgate-cni plugin at {@code cniSocket} (the lab's gateways list their exclusions). */
  public static Agent startWithCni(ControlPlane cp, NetworkLab lab, LabNode n, TcpProxy link, Path cniSocket) {
    return startWithCni(cp, lab, n, link, cniSocket, new SimpleMeterRegistry());
  }

  /** The same, counting into {@code metrics} (a test reads the agent's counters there). */
  public static Agent startWithCni(ControlPlane cp, NetworkLab lab, LabNode n, TcpProxy link, Path cniSocket,
      MeterRegistry metrics) {
    return create(cp, lab, n, link, metrics).withCni(cniSocket, List.of()).start();
  }

  /** The same, with the DNS path asking {@code upstream} (natgate.agent.dns.*; docs/dns-path.md). */
  public static Agent startWithDns(ControlPlane cp, NetworkLab lab, LabNode n, TcpProxy link,
      java.net.InetSocketAddress upstream) {
    return create(cp, lab, n, link).withDns(io.natgate.dns.DnsPath.Settings.defaults(upstream)).start();
  }

  private static Agent create(ControlPlane cp, NetworkLab lab, LabNode n, TcpProxy link) {
    return create(cp, lab, n, link, new SimpleMeterRegistry());
  }

  private static Agent create(ControlPlane cp, NetworkLab lab, LabNode n, TcpProxy link, MeterRegistry metrics) {
    KubernetesClient client = cp.agentClient(n.name());
    KubernetesClient heartbeat = Heartbeat.client(new ConfigBuilder(client.getConfiguration())
        .withMasterUrl("https://127.0.0.1:" + link.port()).build(), FENCE_AFTER);
    // In this JVM the node IP is not local: peer heartbeats cannot be bound, so only Lease-rule groups work here.
    return new Agent(client, heartbeat, Agent.Settings.defaults(n.name(), n.ip(), null),
        new Kernel(lab.nsCommandPrefix(n.ns())), metrics);
  }

  private static ConnectionLog.Settings toFile(Path file) {
    var d = ConnectionLog.Settings.defaults();
    return new ConnectionLog.Settings(file, d.maxFileBytes(), d.keepFiles(), d.queueSize(), d.socketBufferBytes());
  }
}
