package io.natgate.dns;

import io.micrometer.core.instrument.MeterRegistry;
import io.natgate.Defaults;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.dataplane.Kernel;
import io.natgate.dataplane.KernelPlan;
import io.natgate.peers.NodeNamespace;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The DNS path of one node (docs/dns-path.md): the redirect of its followed pods' queries, its DNS proxy, and the
 * exchange of (pod, address) pairs with the nodes that check those pods' connections. The agent gives it its
 * node's states on every apply and adds {@link #addTo its redirect} to what it applies; the proxy and the exchange
 * start once the peer key is known ({@link #start}).
 */
public final class DnsPath implements AutoCloseable {
  /**
   * @param proxyPort       the proxy's UDP and TCP port on the node IP
   * @param pairPort        UDP port of the pairs between nodes (every address of the node: egress IPs too)
   * @param upstream        the resolver the proxy asks
   * @param grace           added to each answer's TTL
   * @param confirmTimeout  how long an answer waits for the gateway's confirmation
   */
  public record Settings(int proxyPort, int pairPort, InetSocketAddress upstream, Duration grace,
      Duration confirmTimeout) {
    public static Settings defaults(InetSocketAddress upstream) {
      return new Settings(Defaults.DNS_PROXY_PORT, Defaults.DNS_PAIR_PORT, upstream,
          Duration.ofSeconds(Defaults.DNS_GRACE_S), Duration.ofMillis(Defaults.DNS_CONFIRM_TIMEOUT_MS));
    }
  }

  private final String nodeName;
  private final String nodeIP;
  private final Settings settings;
  private final Kernel kernel;
  private final MeterRegistry metrics;
  private volatile Map<String, NodeGatewayState> states = Map.of();
  private volatile Map<String, List<DnsRoutes.Route>> routes = Map.of();
  private NodeNamespace namespace;
  private PairExchange exchange;
  private DnsProxy proxy;
  private final AnsweredNames answered = new AnsweredNames();

  public DnsPath(String nodeName, String nodeIP, Settings settings, Kernel kernel, MeterRegistry metrics) {
    this.nodeName = nodeName;
    this.nodeIP = nodeIP;
    this.settings = settings;
    this.kernel = kernel;
    this.metrics = metrics;
  }

  /** This node's part in each gateway, as the operator's states say (the allow lists, pods, peers). */
  public void update(Map<String, ? extends NodeGatewayState> current) {
    states = Map.copyOf(new TreeMap<>(current));
    routes = DnsRoutes.byPod(states);
  }

  /** {@code plan} with the redirect of the followed pods' queries to this node's proxy. */
  public KernelPlan addTo(KernelPlan plan, String tunnelDevice) {
    return DnsRedirect.addTo(plan, states, nodeIP, settings.proxyPort(), tunnelDevice);
  }

  /** The allowed name {@code address} was last answered for, while its pairs last in this node's sets; or null. */
  public String nameOf(String address) {
    return answered.nameOf(address);
  }

  /** Starts the exchange and the proxy with the peer key; until then the redirected queries fail (nothing listens). */
  public synchronized DnsPath start(byte[] key) {
    if (proxy != null) {
      return this;
    }
    namespace = new NodeNamespace(kernel);
    exchange = new PairExchange(nodeName, settings.pairPort(), key, kernel, namespace, () -> states, metrics,
        answered).start();
    proxy = new DnsProxy(nodeIP, settings.proxyPort(), settings.upstream(), settings.grace(),
        settings.confirmTimeout(), namespace, exchange, () -> routes, metrics).start();
    return this;
  }

  /** The first nameserver of a resolv.conf: where the node's own lookups go (the cluster DNS, for the agent's pod). */
  public static InetSocketAddress nameserverOf(Path resolvConf) {
    try {
      return Files.readAllLines(resolvConf).stream().map(String::trim).filter(l -> l.startsWith("nameserver "))
          .map(l -> new InetSocketAddress(l.substring("nameserver ".length()).trim(), 53)).findFirst()
          .orElseThrow(() -> new IllegalStateException("no nameserver in " + resolvConf
              + ": set natgate.agent.dns.upstream"));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @Override
  public synchronized void close() {
    if (proxy != null) {
      proxy.close();
    }
    if (exchange != null) {
      exchange.close();
    }
    if (namespace != null) {
      namespace.close();
    }
  }
}
