package io.natgate.dns;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.natgate.Defaults;
import io.natgate.api.v1alpha1.AllowEntry;
import io.natgate.api.v1alpha1.FailurePolicy;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.api.v1alpha1.PortRange;
import io.natgate.api.v1alpha1.Protocol;
import io.natgate.dataplane.DataplaneSettings;
import io.natgate.dataplane.DestinationSets;
import io.natgate.dataplane.Kernel;
import io.natgate.dataplane.KernelPlan;
import io.natgate.dataplane.NodeDataplane;
import io.natgate.dataplane.Renderer;
import io.natgate.peers.HoldDecision;
import io.natgate.lab.LabNode;
import io.natgate.lab.LabPod;
import io.natgate.lab.NetworkLab;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The DNS path set up on a {@link NetworkLab} (test code): one gateway whose allow list has names, its egress IP
 * held by one node, pod 1 of each director node steered there and followed by its node's proxy, optionally a standby
 * node, and a lab DNS server on the external host. The gateway role checks connections as an agent's would: it
 * creates the names' sets (of the type this kernel has) and refuses what the allow list does not allow. Each node's
 * data plane and DNS path run in this JVM, sockets in the node's namespace.
 */
public final class DnsLab implements AutoCloseable {
  public static final String EGRESS_IP = "198.18.0.130";
  public static final String RESOLVER = "192.0.2.53";
  public static final String ALLOWED = "api.payments.example";
  public static final String WILDCARD = "*.cdn.payments.example";
  public static final String BELOW_WILDCARD = "www.cdn.payments.example";
  public static final String BLOCKED = "blocked.example";
  public static final int PORT = 8443;
  public static final String GATEWAY = "payments";
  public static final List<String> POOL = List.of("203.0.113.20", "203.0.113.21", "203.0.113.22", "203.0.113.23",
      "203.0.113.24", "203.0.113.25");
  public static final List<String> CDN_POOL = List.of("203.0.113.30", "203.0.113.31", "203.0.113.32");
  public static final List<String> BLOCKED_POOL = List.of("203.0.113.40", "203.0.113.41");
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Pattern MEMBER = Pattern.compile(
      "(\\d+\\.\\d+\\.\\d+\\.\\d+),(?:\\w+:\\d+,)?(\\d+\\.\\d+\\.\\d+\\.\\d+) timeout \\d+");

  private final NetworkLab lab;
  private final int holder;
  private final Duration grace;
  final byte[] key = new byte[32];
  private final String client;
  private final Map<Integer, NodeGatewayState> states = new TreeMap<>();
  private final Map<Integer, NodeDataplane> dataplanes = new TreeMap<>();
  private final Map<Integer, DnsPath> paths = new TreeMap<>();
  private final Map<Integer, SimpleMeterRegistry> metrics = new TreeMap<>();
  private final LabDnsServer dns;
  private final String nameSets;

  /**
   * @param standby a node standing by for the egress IP (gets the pairs relayed), or 0
   */
  public DnsLab(NetworkLab lab, int holder, List<Integer> directors, int standby, Duration grace) {
    this.lab = lab;
    this.holder = holder;
    this.grace = grace;
    new java.security.SecureRandom().nextBytes(key);
    try (InputStream in = DnsLab.class.getResourceAsStream("/lab/dns_client.py")) {
      client = new String(in.readAllBytes(), StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    // The external host answers DNS on RESOLVER and takes connections on every answered address.
    var external = new StringBuilder("ip addr add " + RESOLVER + "/32 dev lo\n");
    Stream.of(POOL, CDN_POOL, BLOCKED_POOL).flatMap(List::stream)
        .forEach(ip -> external.append("ip addr add ").append(ip).append("/32 dev lo\n"));
    lab.exec(lab.externalNs(), "bash", "-c", external.toString());
    dns = new LabDnsServer(new Kernel(lab.nsCommandPrefix(lab.externalNs())), Map.of(
        ALLOWED, new LabDnsServer.Zone(null, POOL),
        BELOW_WILDCARD, new LabDnsServer.Zone("edge.provider.example", CDN_POOL),
        BLOCKED, new LabDnsServer.Zone(null, BLOCKED_POOL))).start(RESOLVER, PORT);

    LabNode gateway = lab.node(holder);
    List<String> followed = directors.stream().map(n -> lab.pod(n, 1).ip()).toList();
    for (int n : directors) {
      var director = part();
      director.steer.add(new NodeGatewayState.Steer(EGRESS_IP, gateway.name(), gateway.ip(),
          List.of(lab.pod(n, 1).ip())));
      states.put(n, director);
    }
    var peers = new NodeGatewayState.Peers();
    peers.members = lab.nodes().stream().map(n -> new NodeGatewayState.Member(n.name(), n.ip())).toList();
    peers.successions = List.of(new NodeGatewayState.Succession(EGRESS_IP, gateway.name(),
        standby == 0 ? List.of() : List.of(lab.node(standby).name())));
    var holding = part();
    holding.snat.add(new NodeGatewayState.Snat(EGRESS_IP, true, followed));
    holding.peers = standby == 0 ? null : peers;
    states.put(holder, holding);
    if (standby != 0) {
      var standing = part();
      standing.peers = new NodeGatewayState.Peers();
      standing.peers.members = peers.members;
      standing.peers.successions = peers.successions;
      standing.peers.standby = List.of(new NodeGatewayState.Snat(EGRESS_IP, true, followed));
      states.put(standby, standing);
    }
    for (int n : states.keySet()) {
      var dp = new NodeDataplane(kernel(n), DataplaneSettings.defaults(lab.node(n).uplink()));
      dataplanes.put(n, dp);
      DnsPath path = startPath(n);
      // as the agent renders it: the standby keeps the SNAT (and the allow list's check) ready, the holder holds
      var part = HoldDecision.withHolding(states.get(n), n == holder ? Set.of(EGRESS_IP) : Set.of());
      dp.apply(path.addTo(Renderer.render(Map.of(GATEWAY, part), dp.settings(), dp.nameSetType()),
          Defaults.TUNNEL_DEVICE));
    }
    nameSets = dataplanes.get(holder).nameSetType();
    System.out.printf("names' sets: %s%n", nameSets);
  }

  /** With a port: a kernel without hash:net,net keeps the pairs in hash:ip,port,ip sets (see SetMembers). */
  private static NodeGatewayState part() {
    var s = new NodeGatewayState();
    s.failurePolicy = FailurePolicy.Drop;
    s.cidrs = List.of("0.0.0.0/0");
    s.excludedCidrs = List.of(NetworkLab.POD_CIDR);
    var https = List.of(new PortRange(Protocol.TCP, PORT, null));
    s.allow = List.of(AllowEntry.cidr("198.51.100.0/24"), new AllowEntry(null, ALLOWED, https),
        new AllowEntry(null, WILDCARD, https));
    return s;
  }

  Kernel kernel(int node) {
    return new Kernel(lab.nsCommandPrefix(lab.node(node).ns()));
  }

  /** The node's DNS path, as an agent starts it (again, after {@link #stopPath}). */
  DnsPath startPath(int n) {
    var registry = new SimpleMeterRegistry();
    metrics.put(n, registry);
    var d = DnsPath.Settings.defaults(new InetSocketAddress(RESOLVER, 53));
    DnsPath path = new DnsPath(lab.node(n).name(), lab.node(n).ip(), new DnsPath.Settings(d.proxyPort(),
        d.pairPort(), d.upstream(), grace, d.confirmTimeout()), kernel(n), registry);
    path.update(Map.of(GATEWAY, states.get(n)));
    paths.put(n, path.start(key));
    return path;
  }

  /** As an agent that stopped: the path's sockets close, its kernel state (the redirect) stays. */
  void stopPath(int n) {
    paths.remove(n).close();
  }

  NodeDataplane dataplane(int n) {
    return dataplanes.get(n);
  }

  long queries() {
    return dns.queries();
  }

  boolean netnet() {
    return DestinationSets.TYPE.equals(nameSets);
  }

  /** lab/dns_client.py in the pod: {@code count} queries of {@code name} to the resolver, and connections. */
  public JsonNode resolve(LabPod pod, String name, int count, boolean connect, String... more) {
    List<String> args = new ArrayList<>(List.of(lab.python(), "-c", client, "--server", RESOLVER, "--name", name,
        "--count", String.valueOf(count)));
    args.addAll(List.of(more));
    if (connect) {
      args.addAll(List.of("--connect-port", String.valueOf(PORT)));
    }
    try {
      return JSON.readTree(lab.exec(pod.ns(), args.toArray(String[]::new)));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The (pod, address) pairs of a name's set on a node, as "pod,address" whatever the set's type. */
  Set<String> pairs(int node, String fqdn) {
    Set<String> pairs = new TreeSet<>();
    for (String line : lab.exec(lab.node(node).ns(), "ipset", "list", DestinationSets.fqdn(GATEWAY, fqdn))
        .split("\n")) {
      var m = MEMBER.matcher(line);
      if (m.matches()) {
        pairs.add(m.group(1) + "," + m.group(2));
      }
    }
    return pairs;
  }

  double rejected(int node, String reason) {
    var c = metrics.get(node).find("natgate_agent_dns_pairs_rejected_total").tag("reason", reason).counter();
    return c == null ? 0 : c.count();
  }

  @Override
  public void close() {
    paths.values().forEach(DnsPath::close);
    dataplanes.values().forEach(dp -> {
      dp.apply(KernelPlan.EMPTY);
      dp.close();
    });
    dns.close();
    var external = new StringBuilder("ip addr del " + RESOLVER + "/32 dev lo\n");
    Stream.of(POOL, CDN_POOL, BLOCKED_POOL).flatMap(List::stream)
        .forEach(ip -> external.append("ip addr del ").append(ip).append("/32 dev lo\n"));
    lab.exec(lab.externalNs(), "bash", "-c", external.toString());
  }
}
