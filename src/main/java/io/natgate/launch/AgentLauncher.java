package io.natgate.launch;

import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.http.HttpClient;
import io.micrometer.core.instrument.MeterRegistry;
import io.natgate.Defaults;
import io.natgate.agent.Agent;
import io.natgate.agent.Heartbeat;
import io.natgate.cni.CniInstallation;
import io.natgate.config.NatgateConfig;
import io.natgate.connlog.ConnectionLog;
import io.natgate.dataplane.Kernel;
import io.natgate.dataplane.SnatPorts;
import io.natgate.dns.DnsPath;
import io.natgate.peers.PeerLiveness;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.List;
import org.jboss.logging.Logger;

/**
 * Builds the node agent from natgate's configuration, starts it, and stops it as a pod's end asks: uninstall when its
 * DaemonSet is gone, otherwise leave (a standby takes over) and keep the kernel state.
 */
public final class AgentLauncher {
  private static final Logger LOG = Logger.getLogger(AgentLauncher.class);
  private final NatgateConfig config;
  private final KubernetesClient client;
  private volatile Agent agent;
  private CniInstallation cniInstallation;

  public AgentLauncher(NatgateConfig config, KubernetesClient client) {
    this.config = config;
    this.client = client;
  }

  /** {@code factory}: the HTTP client of the heartbeat's own client, the same kind as {@code client}'s. */
  public void start(HttpClient.Factory factory, MeterRegistry metrics) {
    var a = config.agent();
    var h = config.heartbeat();
    var p = config.peers();
    String node = a.nodeName().orElseThrow(() -> new IllegalStateException(
        "natgate.agent.node-name (NATGATE_AGENT_NODE_NAME, from spec.nodeName) is required in agent mode"));
    KubernetesClient heartbeatClient = Heartbeat.client(client.getConfiguration(), h.fenceAfter(), factory);
    var settings = new Agent.Settings(node, a.nodeIp().orElse(null), a.uplink().orElse(null), h.namespace(),
        h.renewInterval(), h.timeout(), h.fenceAfter(), a.repairInterval(), a.tunnelPort(),
        Defaults.markMask(a.markMask()), a.tableBase(), a.rulePriority(),
        new PeerLiveness.Settings(p.port(), p.interval(), p.timeout(), p.takeoverMargin()));
    var log = a.connectionLog();
    var logSettings = new ConnectionLog.Settings(log.file().map(Path::of).orElse(null), log.maxFileBytes(),
        log.keepFiles(), log.queueSize(), log.socketBufferBytes());
    var created = new Agent(client, heartbeatClient, settings, new Kernel(List.of(), Kernel.DEFAULT_TIMEOUT, a.procSys()), metrics)
        .withConnectionLog(logSettings);
    a.snatPorts().ifPresent(range -> created.withSnatPorts(SnatPorts.parse(range)));
    a.cniSocket().ifPresent(socket -> created.withCni(Path.of(socket), config.clusterCidrs().orElse(List.of())));
    if (a.dns().enabled()) {
      try {
        created.withDns(dnsSettings(a.dns()));
      } catch (RuntimeException e) {
        // No upstream to ask: names in allow lists allow nothing here (their pods' queries are not redirected).
        LOG.errorf("no DNS path: %s", e.getMessage());
      }
    }
    agent = created.start();
    if (a.cniSocket().isPresent() && a.cniBinDir().isPresent() && a.cniConfDir().isPresent()) {
      cniInstallation = new CniInstallation(Path.of(a.cniPlugin()), Path.of(a.cniBinDir().get()),
          Path.of(a.cniConfDir().get()), a.cniSocket().get()).start();
    }
  }

  private static DnsPath.Settings dnsSettings(NatgateConfig.Dns d) {
    InetSocketAddress upstream = d.upstream().map(AgentLauncher::hostPort)
        .orElseGet(() -> DnsPath.nameserverOf(Path.of("/etc/resolv.conf")));
    return new DnsPath.Settings(d.proxyPort(), d.pairPort(), upstream, d.grace(), d.confirmTimeout());
  }

  /** host or host:port (53). */
  private static InetSocketAddress hostPort(String text) {
    int colon = text.lastIndexOf(':');
    return colon < 0 ? new InetSocketAddress(text, 53)
        : new InetSocketAddress(text.substring(0, colon), Integer.parseInt(text.substring(colon + 1)));
  }

  /** On SIGTERM: uninstall or leave, then close. */
  public void stop() {
    Agent a = agent;
    if (a == null) {
      return;
    }
    if (uninstalling()) {
      if (cniInstallation != null) {
        cniInstallation.uninstall(); // first: no new pod waits for an agent that is going away
      }
      a.uninstall();
    } else {
      if (cniInstallation != null) {
        cniInstallation.close(); // stays chained: pods starting meanwhile wait for the next agent
      }
      a.leave(); // a standby takes the egress IPs over at once; this node's pods go through it meanwhile
    }
    a.close(); // otherwise the kernel state stays: traffic keeps flowing while a new agent starts
  }

  /**
   * Whether the agent's DaemonSet is gone or being deleted, as the API server says now. Anything else is a restart,
   * whose kernel state must stay: the DaemonSet there, the API server unreachable, or this agent's credentials
   * refused (401/403), which is no evidence of an uninstall: the token of a Pod deleted with {@code --force} (or
   * removed with its Node) is refused from that moment, while its replacement is starting.
   */
  private boolean uninstalling() {
    var name = config.agent().daemonSet();
    if (name.isEmpty()) {
      return false;
    }
    String namespace = config.heartbeat().namespace();
    try {
      // Untyped: the typed DaemonSet (its pod template) costs seconds of class loading on a loaded node, at a moment
      // when the kubelet counts down the grace period.
      var ds = client.genericKubernetesResources("apps/v1", "DaemonSet").inNamespace(namespace).withName(name.get())
          .get();
      return ds == null || ds.getMetadata().getDeletionTimestamp() != null;
    } catch (RuntimeException e) {
      LOG.warnf("stopping without knowing whether DaemonSet %s/%s is being deleted (%s): keeping natgate's kernel "
          + "state and natgate-cni, as on a restart (uninstall: delete the DaemonSet first, README)", namespace,
          name.get(), e.getMessage());
      return false;
    }
  }

  /** Readiness ({@code /q/health/group/agent}): the node's current state applied; else why not, or null. */
  public Health ready() {
    Agent a = agent;
    return new Health("natgate-agent", a != null && a.ready(), "agent", a == null ? null : a.lastError());
  }

  /** Liveness ({@code /q/health/live}): DOWN while the agent cannot watch its node's states (403, API server refusing). */
  public Health watching() {
    Agent a = agent;
    String error = a == null ? null : a.watchError();
    return new Health("natgate-agent-watch", error == null, null, error);
  }

  /** One health check's answer; {@code mode} and {@code error} (either may be null) are its data. */
  public record Health(String name, boolean up, String mode, String error) {
  }
}
