package io.natgate.lab;

import io.natgate.plan.IpAddresses;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BiPredicate;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ConditionEvaluationResult;
import org.junit.jupiter.api.extension.ExecutionCondition;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * A cluster's network made of Linux network namespaces, for tests of the data path with real packets.
 *
 * <pre>
 *   pods 198.19.i.(10+k)/32 --veth (proxy ARP)-- node i 198.18.0.(10+i) --+
 *                                                                        br0 (namespace &lt;p&gt;net) -- external host
 *                                                                        |   198.18.0.200, echo server on 203.0.113.10
 * </pre>
 *
 * Nodes forward, route each other's pod /24s over the node network and masquerade pod traffic leaving the pod
 * network (chain {@code LAB-CNI-MASQ}, like a CNI). The external host has no route back to pods: a packet that leaves
 * with a pod's address is seen and counted there but never answered. Nothing is added to the root namespace.
 *
 * <p>As a JUnit extension ({@code @RegisterExtension static}) it builds in beforeAll and tears down in afterAll.
 * Where it cannot run, it builds nothing and each test of the class is reported skipped with the reason (a class
 * aborted as a whole would show as "Tests run: 0"); a class's own {@code @BeforeAll} checks {@link #started()}.
 * Everything it creates carries a per-run prefix, and is removed on close,
 * on failure, and by a shutdown hook; the external server also exits when the JVM's end of its stdin closes.
 */
public final class NetworkLab implements BeforeAllCallback, AfterAllCallback, ExecutionCondition, AutoCloseable {
  public static final String NODE_CIDR = "198.18.0.0/24";
  public static final String POD_CIDR = "198.19.0.0/16";
  public static final String EXTERNAL_IP = "203.0.113.10";
  /** The external host's address on the node network, the nodes' default gateway. */
  public static final String EXTERNAL_GATEWAY = "198.18.0.200";
  /** A port every pod may use; each pod also has a {@link LabPod#probePort} of its own. */
  public static final int ECHO_PORT = 7777;
  public static final String CNI_CHAIN = "LAB-CNI-MASQ";
  /** The nodes' drop of packets conntrack calls INVALID, as kube-proxy's KUBE-FORWARD has it. */
  public static final String INVALID_CHAIN = "LAB-KUBE-INVALID";

  static final List<String> TOOLS = List.of("ip", "iptables", "iptables-save", "iptables-restore", "iptables-nft-save",
      "iptables-legacy", "iptables-legacy-save", "ipset", "arping", "python3", "bash", "timeout");
  private static final Duration CONNECT_TIMEOUT = Duration.ofMillis(1500);
  /** Below TCP's first SYN retransmission (1 s): one probe is exactly one attempt. */
  public static final Duration PROBE_TIMEOUT = Duration.ofMillis(900);
  private static final Duration COMMAND_TIMEOUT = Duration.ofSeconds(30);

  private final int nodeCount;
  private int podsPerNode = 2;
  private String prefix;
  private String python;
  private final List<LabNode> nodes = new ArrayList<>();
  private final List<LabPod> pods = new ArrayList<>();
  /** Namespaces this run created, in creation order: the only ones it ever deletes. */
  private final List<String> namespaces = new CopyOnWriteArrayList<>();
  /** Processes this run started that outlive one call; each is ended on close. */
  private final Set<Process> children = ConcurrentHashMap.newKeySet();
  private final Set<Prober> probers = ConcurrentHashMap.newKeySet();
  private final AtomicBoolean closed = new AtomicBoolean();
  private Process server;
  private BufferedReader serverOut;
  private Thread shutdownHook;

  private NetworkLab(int nodeCount) {
    if (nodeCount < 1 || nodeCount > 9) {
      throw new IllegalArgumentException("1 to 9 nodes, not " + nodeCount);
    }
    this.nodeCount = nodeCount;
  }

  public static NetworkLab withNodes(int count) {
    return new NetworkLab(count);
  }

  public NetworkLab podsPerNode(int count) {
    if (count < 0 || count > 9) {
      throw new IllegalArgumentException("0 to 9 pods per node, not " + count);
    }
    podsPerNode = count;
    return this;
  }

  @Override
  public void beforeAll(ExtensionContext context) {
    if (unavailableReason() == null) {
      start();
    }
  }

  /** Each test, not the class: so that every test the lab cannot run is counted and shown as skipped. */
  @Override
  public ConditionEvaluationResult evaluateExecutionCondition(ExtensionContext context) {
    String reason = context.getTestMethod().isPresent() ? unavailableReason() : null;
    return reason == null ? ConditionEvaluationResult.enabled("network lab available")
        : ConditionEvaluationResult.disabled(reason);
  }

  /** Whether the lab was built (false where it cannot run: its tests are skipped). */
  public boolean started() {
    return prefix != null;
  }

  @Override
  public void afterAll(ExtensionContext context) {
    close();
  }

  /** Why the lab cannot run here ("... skipped"), or null when it can. */
  public static String unavailableReason() {
    List<String> missing = TOOLS.stream().filter(t -> which(t) == null).toList();
    if (hasCapabilities() && missing.isEmpty()) {
      return null;
    }
    return "network lab needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and " + String.join(", ", TOOLS)
        + (missing.isEmpty() ? "" : " (missing: " + String.join(", ", missing) + ")") + ": skipped";
  }

  /** Builds the topology and starts the external host's server; on any failure removes what it made. */
  public void start() {
    long started = System.nanoTime();
    shutdownHook = new Thread(this::closeQuietly, "network-lab-cleanup");
    Runtime.getRuntime().addShutdownHook(shutdownHook);
    try {
      python = realPython();
      prefix = freshPrefix();
      for (int i = 1; i <= nodeCount; i++) {
        nodes.add(new LabNode(i, "node-" + i, prefix + "n" + i, "198.18.0." + (10 + i), "eth0"));
        for (int k = 1; k <= podsPerNode; k++) {
          pods.add(new LabPod("pod-" + i + "-" + k, prefix + "n" + i + "p" + k, "198.19." + i + "." + (10 + k), i, k,
              7000 + 10 * i + k, prefix + "c" + i + k));
        }
      }
      build();
      startServer();
    } catch (RuntimeException | Error e) {
      closeQuietly();
      throw e;
    }
    System.out.printf("network lab %s: %d nodes, %d pods, external host: up in %d ms%n", prefix, nodeCount,
        pods.size(), (System.nanoTime() - started) / 1_000_000);
  }

  private void build() {
    for (String ns : Stream.concat(Stream.of(netNs(), externalNs()),
        Stream.concat(nodes.stream().map(LabNode::ns), pods.stream().map(LabPod::ns))).toList()) {
      command(List.of("ip", "netns", "add", ns), null);
      namespaces.add(ns); // only once created: a name that already existed is not ours to delete
    }
    // IPv6 off everywhere: no link-local addresses or router solicitations to vary between snapshots.
    String common = """
        set -eu
        trap 'echo "failed: $BASH_COMMAND" >&2' ERR
        echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6
        echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
        ip link set lo up
        """;
    StringBuilder net = new StringBuilder(common).append("ip link add br0 type bridge\nip link set br0 up\n");
    for (String host : Stream.concat(nodes.stream().map(LabNode::ns), Stream.of(externalNs())).toList()) {
      // The bridge port is named after the host it leads to; the host's end is its eth0.
      net.append("ip link add %s type veth peer name eth0 netns %s\nip link set %s master br0 up\n"
          .formatted(host, host, host));
    }
    script(netNs(), net.toString());
    for (LabNode node : nodes) {
      StringBuilder s = new StringBuilder(common).append("""
          echo 1 > /proc/sys/net/ipv4/ip_forward
          ip addr add %s/24 dev eth0
          ip link set eth0 up
          ip route add default via %s
          """.formatted(node.ip(), EXTERNAL_GATEWAY));
      for (LabNode other : nodes) {
        if (other != node) {
          s.append("ip route add 198.19.%d.0/24 via %s\n".formatted(other.index(), other.ip()));
        }
      }
      for (LabPod pod : pods(node)) {
        // Calico style: the pod's gateway 169.254.1.1 is answered by proxy ARP, at once rather than after up to 80 ms.
        s.append("""
            ip link add %1$s type veth peer name eth0 netns %2$s
            ip link set %1$s up
            echo 1 > /proc/sys/net/ipv4/conf/%1$s/proxy_arp
            echo 0 > /proc/sys/net/ipv4/neigh/%1$s/proxy_delay
            ip route add %3$s/32 dev %1$s
            """.formatted(pod.hostVeth(), pod.ns(), pod.ip()));
      }
      // As kube-proxy does (KUBE-FORWARD): a packet conntrack calls INVALID skips the nat table, so a pod's would
      // leave with the pod's own address; it is dropped instead.
      s.append("""
          iptables-restore --noflush <<EOF
          *nat
          :%1$s - [0:0]
          -A POSTROUTING -j %1$s
          -A %1$s -s %2$s ! -d %2$s -j MASQUERADE
          COMMIT
          *filter
          :%3$s - [0:0]
          -A FORWARD -j %3$s
          -A %3$s -m conntrack --ctstate INVALID -j DROP
          COMMIT
          EOF
          """.formatted(CNI_CHAIN, POD_CIDR, INVALID_CHAIN));
      script(node.ns(), s.toString());
    }
    for (LabPod pod : pods) {
      script(pod.ns(), common + """
          ip addr add %s/32 dev eth0
          ip link set eth0 up
          ip route add 169.254.1.1 dev eth0 scope link
          ip route add default via 169.254.1.1 dev eth0
          """.formatted(pod.ip()));
    }
    script(externalNs(), common + """
        ip addr add %s/32 dev lo
        ip addr add %s/24 dev eth0
        ip link set eth0 up
        """.formatted(EXTERNAL_IP, EXTERNAL_GATEWAY));
  }

  private void startServer() {
    String ports = Stream.concat(Stream.of(ECHO_PORT), pods.stream().map(LabPod::probePort))
        .map(String::valueOf).collect(Collectors.joining(","));
    server = startPython(externalNs(), EXTERNAL_IP, ports, "--count-on", "eth0");
    serverOut = new BufferedReader(new InputStreamReader(server.getInputStream(), StandardCharsets.UTF_8));
    awaitReady(server, serverOut);
  }

  /** python3 running lab/external.py in a namespace; by its absolute path, so the process is the interpreter. */
  private Process startPython(String ns, String listen, String ports, String... more) {
    List<String> command = new ArrayList<>(nsCommandPrefix(ns));
    command.addAll(List.of(python, "-c", externalScript(), "--listen", listen, "--ports", ports));
    command.addAll(List.of(more));
    try {
      Process p = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.INHERIT).start();
      children.add(p);
      return p;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * A server of lab/connect.py on the external host ({@link #EXTERNAL_IP}:{@code port}), answering each connection
   * with the bytes it asks for; ended on close.
   */
  public Process startConnectServer(int port) {
    return startConnectServer(EXTERNAL_IP, port);
  }

  /** The same on another address of the external host ("0.0.0.0": every one of its addresses). */
  public Process startConnectServer(String listen, int port) {
    List<String> command = new ArrayList<>(nsCommandPrefix(externalNs()));
    command.addAll(List.of(python, "-c", script("/lab/connect.py"), "--serve", "--listen", listen, "--port",
        String.valueOf(port)));
    try {
      Process p = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.INHERIT).start();
      children.add(p);
      awaitReady(p, new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8)));
      return p;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Runs lab/connect.py as a client in the namespace (arguments: see the script) to its end: its JSON report. */
  public String connectClient(String ns, String... args) {
    List<String> command = new ArrayList<>(nsCommandPrefix(ns));
    command.addAll(List.of(python, "-c", script("/lab/connect.py")));
    command.addAll(List.of(args));
    return command(command, null);
  }

  private static void awaitReady(Process p, BufferedReader out) {
    try {
      String line = CompletableFuture.supplyAsync(() -> readLine(out)).get(10, TimeUnit.SECONDS);
      if (!"ready".equals(line)) {
        throw new IllegalStateException("lab/external.py did not start (" + line + "), exit "
            + (p.isAlive() ? "-" : p.exitValue()));
      }
    } catch (InterruptedException | ExecutionException | TimeoutException e) {
      throw new IllegalStateException("lab/external.py did not start", e);
    }
  }

  public LabNode node(int index) {
    return nodes.get(index - 1);
  }

  public LabPod pod(int node, int index) {
    return pods.stream().filter(p -> p.node() == node && p.index() == index).findFirst()
        .orElseThrow(() -> new IllegalArgumentException("no pod " + index + " on node " + node));
  }

  public List<LabNode> nodes() {
    return Collections.unmodifiableList(nodes);
  }

  public List<LabPod> pods() {
    return Collections.unmodifiableList(pods);
  }

  public List<LabPod> pods(LabNode node) {
    return pods.stream().filter(p -> p.node() == node.index()).toList();
  }

  public String externalIP() {
    return EXTERNAL_IP;
  }

  /** The namespace of the external host (on the node network as {@link #EXTERNAL_GATEWAY}). */
  public String externalNs() {
    return prefix + "ext";
  }

  /** The namespace holding the node network's bridge {@code br0}. */
  public String netNs() {
    return prefix + "net";
  }

  /** This run's prefix of every namespace and interface name. */
  public String prefix() {
    return prefix;
  }

  /** The absolute path of the python3 interpreter the lab uses. */
  public String python() {
    return python;
  }

  /** The PID of the external host's server process (-1 before it started). */
  public long serverPid() {
    return server == null ? -1 : server.pid();
  }

  /** All namespaces of this run. */
  public List<String> namespaces() {
    return List.copyOf(namespaces);
  }

  /**
   * Connects from the pod to the external echo server on the pod's probe port: the source address the server saw,
   * or empty when no connection was made within 1.5 s.
   */
  /** Whether the node holds {@code ip} as a /32 address on its uplink. */
  public boolean holds(LabNode node, String ip) {
    return exec(node.ns(), "ip", "-4", "-o", "address", "show", "dev", node.uplink()).contains(" " + ip + "/32 ");
  }

  /**
   * The names of the nodes holding {@code ip} on their uplink, read by one process, node after node within a few
   * milliseconds (a process per node took hundreds of them on a loaded machine: an overlap that short went unseen).
   */
  public Set<String> holders(String ip) {
    return Set.copyOf(holders(List.of(ip)).get(ip));
  }

  /** The same for several IPs at once: by IP, the names of the nodes holding it (empty when none does). */
  public Map<String, Set<String>> holders(Collection<String> ips) {
    var text = new StringBuilder();
    for (LabNode n : nodes) {
      text.append("a=$(ip -n %s -4 -o address show dev %s)%n".formatted(n.ns(), n.uplink()));
      ips.forEach(ip -> text.append("[[ $a == *' %s/32 '* ]] && echo '%s %s'%n".formatted(ip, ip, n.name())));
    }
    Map<String, Set<String>> byIP = new TreeMap<>();
    ips.forEach(ip -> byIP.put(ip, new TreeSet<>()));
    command(List.of("bash", "-s"), text.append("true\n").toString()).lines().map(l -> l.split(" "))
        .forEach(f -> byIP.get(f[0]).add(f[1]));
    return byIP;
  }

  public Optional<String> seenSource(LabPod pod) {
    return connect(pod.ns(), EXTERNAL_IP, pod.probePort(), CONNECT_TIMEOUT).join().source();
  }

  /** The same from any namespace of the lab to any port of the external server. */
  public Optional<String> seenSource(String ns, int port) {
    return connect(ns, EXTERNAL_IP, port, CONNECT_TIMEOUT).join().source();
  }

  /** Connects from one pod to another (a one-shot server there): the source address {@code to} saw, or empty. */
  public Optional<String> seenSource(LabPod from, LabPod to) {
    Process once = startPython(to.ns(), to.ip(), String.valueOf(ECHO_PORT), "--once");
    try {
      awaitReady(once, new BufferedReader(new InputStreamReader(once.getInputStream(), StandardCharsets.UTF_8)));
      return connect(from.ns(), to.ip(), ECHO_PORT, CONNECT_TIMEOUT).join().source();
    } finally {
      end(once);
      children.remove(once);
    }
  }

  /**
   * One TCP connection that reads the echo server's answer, through bash's /dev/tcp under timeout(1): a few
   * milliseconds, where a JVM or python per connection would cost far more.
   */
  private CompletableFuture<Prober.Probe> connect(String ns, String ip, int port, Duration timeout) {
    List<String> command = new ArrayList<>(nsCommandPrefix(ns));
    command.addAll(List.of("timeout", String.valueOf(timeout.toMillis() / 1000.0), "bash", "-c",
        // the moment it begins to connect, from the shell itself (the process may take a while to start)
        "echo $EPOCHREALTIME; exec 3<>/dev/tcp/%s/%d && cat <&3".formatted(ip, port)));
    Instant at = Instant.now();
    long start = System.nanoTime();
    Process p;
    try {
      p = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.DISCARD).start();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    children.add(p);
    return p.onExit().thenApply(done -> {
      children.remove(done);
      Duration took = Duration.ofNanos(System.nanoTime() - start);
      String[] out = readAll(done.getInputStream()).trim().split("\n", 2);
      // a shell that never ran never connected: taken as begun at the end (a new connection, whatever moved)
      Instant sent = out[0].matches("\\d+[.,]\\d+") ? Instant.ofEpochSecond(0,
          new java.math.BigDecimal(out[0].replace(',', '.')).movePointRight(9).longValueExact()) : at.plus(took);
      String source = done.exitValue() == 0 && out.length == 2 ? out[1].trim() : "";
      return new Prober.Probe(at, took, source.isEmpty() ? Optional.empty() : Optional.of(source), sent);
    });
  }

  /** Packets that reached the external host for this pod's probe port, by source address. */
  public Map<String, Long> arrivals(LabPod pod) {
    return arrivals(pod.probePort());
  }

  /** Packets that reached the external host for a destination port, by source address. */
  public Map<String, Long> arrivals(int port) {
    return arrivals((source, toPort) -> toPort == port);
  }

  /** Packets that reached the external host from sources in {@code cidr}, to any port, by source address. */
  public Map<String, Long> arrivalsFrom(String cidr) {
    return arrivals((source, toPort) -> IpAddresses.inCidr(source, cidr));
  }

  private Map<String, Long> arrivals(BiPredicate<String, Integer> counted) {
    Map<String, Long> bySource = new HashMap<>();
    for (String line : ask("counts")) {
      String[] f = line.split(" ");
      if (counted.test(f[0], Integer.parseInt(f[1]))) {
        bySource.merge(f[0], Long.parseLong(f[2]), Long::sum);
      }
    }
    return bySource;
  }

  /**
   * When the external host accepted the first connection from {@code source} to the pod's probe port at or after
   * {@code since} (and sent its answer): unlike a probe's end, free of the probing process's start and exit.
   */
  public Optional<Instant> firstAccepted(LabPod pod, String source, Instant since) {
    long sinceNanos = since.getEpochSecond() * 1_000_000_000L + since.getNano();
    return ask("first " + pod.probePort() + " " + source + " " + sinceNanos).stream().findFirst()
        .map(ns -> Instant.ofEpochSecond(0, Long.parseLong(ns)));
  }

  public void resetArrivals() {
    ask("reset");
  }

  private synchronized List<String> ask(String command) {
    try {
      OutputStream in = server.getOutputStream();
      in.write((command + "\n").getBytes(StandardCharsets.UTF_8));
      in.flush();
      List<String> answer = new ArrayList<>();
      for (String line = serverOut.readLine(); ; line = serverOut.readLine()) {
        if (line == null || line.startsWith("error")) {
          throw new IllegalStateException("external server: " + (line == null ? "gone" : line));
        }
        if (line.equals("end") || line.equals("ok")) {
          return answer;
        }
        answer.add(line);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Runs a command in a namespace of the lab (or any): its stdout; throws with stderr and exit code on failure. */
  public String exec(String ns, String... command) {
    List<String> full = new ArrayList<>(nsCommandPrefix(ns));
    full.addAll(List.of(command));
    return command(full, null);
  }

  /**
   * A network namespace of this run's own, removed with the lab (say, a pod sandbox that a CNI plugin sets up), with
   * its loopback up: its full name.
   */
  public String newNamespace(String suffix) {
    String ns = prefix + suffix;
    command(List.of("ip", "netns", "add", ns), null);
    namespaces.add(ns);
    exec(ns, "ip", "link", "set", "lo", "up");
    return ns;
  }

  /** How to run a command in a namespace: prepend this. */
  public List<String> nsCommandPrefix(String ns) {
    return List.of("ip", "netns", "exec", ns);
  }

  /** A bash script on stdin, in a namespace. */
  String script(String ns, String text) {
    List<String> full = new ArrayList<>(nsCommandPrefix(ns));
    full.addAll(List.of("bash", "-s"));
    return command(full, text);
  }

  public KernelState kernelState(String ns) {
    return KernelState.parse(ns, script(ns, KernelState.SCRIPT));
  }

  /** The kernel state of every namespace of the lab, by namespace. */
  public Map<String, KernelState> kernelStates() {
    Map<String, KernelState> states = new LinkedHashMap<>();
    namespaces.forEach(ns -> states.put(ns, kernelState(ns)));
    return states;
  }

  /**
   * The node loses the node network: its bridge port goes down, so its eth0 loses carrier, as if unplugged. Frames
   * stop at once; returns when the node's eth0 reports it (the kernel's linkwatch: up to a second).
   */
  public void cutLink(LabNode node) {
    exec(netNs(), "ip", "link", "set", node.ns(), "down");
    awaitLink(node, false);
  }

  /**
   * Plugs the node back in. Returns once the bridge forwards its port and the node's eth0 is up again: the kernel
   * applies carrier changes through linkwatch, up to a second later, and drops the node's frames until then.
   */
  public void restoreLink(LabNode node) {
    exec(netNs(), "ip", "link", "set", node.ns(), "up");
    awaitLink(node, true);
  }

  /** Waits for both ends: brport/state 3 is forwarding; operstate is what the node (and an agent on it) sees. */
  private void awaitLink(LabNode node, boolean up) {
    long deadline = System.nanoTime() + Duration.ofSeconds(5).toNanos();
    while (up != "3".equals(exec(netNs(), "cat", "/sys/class/net/" + node.ns() + "/brport/state").trim())
        || up != "up".equals(exec(node.ns(), "cat", "/sys/class/net/" + node.uplink() + "/operstate").trim())) {
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("link of " + node.name() + " still not " + (up ? "up" : "down") + " after 5 s");
      }
      try {
        Thread.sleep(10);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException(e);
      }
    }
  }

  /**
   * Connects from the pod to its probe port every {@code every}, in the background, until {@link Prober#stop}.
   * Each probe is given 0.9 s, less than TCP's first SYN retransmission: one probe is one attempt.
   */
  public Prober startProbing(LabPod pod, Duration every) {
    Prober prober = new Prober(() -> connect(pod.ns(), EXTERNAL_IP, pod.probePort(), PROBE_TIMEOUT), every);
    probers.add(prober);
    return prober;
  }

  /**
   * Ends what this run started and deletes the namespaces it created, then reports what could not be cleaned, or
   * processes that others started in the lab's namespaces (they would keep a deleted namespace alive).
   */
  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) {
      return;
    }
    long started = System.nanoTime();
    List<String> problems = new ArrayList<>();
    probers.forEach(Prober::stop);
    if (server != null) {
      try {
        server.getOutputStream().close(); // it exits on end of input
      } catch (IOException e) {
        // already gone
      }
    }
    children.forEach(NetworkLab::end);
    for (String ns : namespaces) {
      try {
        String pids = command(List.of("ip", "netns", "pids", ns), null).trim();
        if (!pids.isEmpty()) {
          problems.add("processes still running in " + ns + " (not started by the lab): " + pids.replace('\n', ' '));
        }
      } catch (RuntimeException e) {
        problems.add(e.getMessage());
      }
    }
    List<String> reversed = new ArrayList<>(namespaces);
    Collections.reverse(reversed);
    for (String ns : reversed) {
      try {
        command(List.of("ip", "netns", "delete", ns), null);
        namespaces.remove(ns);
      } catch (RuntimeException e) {
        problems.add(e.getMessage());
      }
    }
    if (shutdownHook != null && Thread.currentThread() != shutdownHook) {
      try {
        Runtime.getRuntime().removeShutdownHook(shutdownHook);
      } catch (IllegalStateException e) {
        // the JVM is already shutting down
      }
    }
    System.out.printf("network lab %s: torn down in %d ms%n", prefix, (System.nanoTime() - started) / 1_000_000);
    if (!problems.isEmpty()) {
      throw new IllegalStateException("network lab " + prefix + " teardown: " + String.join("; ", problems));
    }
  }

  private void closeQuietly() {
    try {
      close();
    } catch (RuntimeException e) {
      System.err.println(e.getMessage());
    }
  }

  /** Ends a process this run started, and waits for it: gently first (python exits on end of input or SIGTERM). */
  private static void end(Process p) {
    try {
      if (!p.waitFor(2, TimeUnit.SECONDS)) {
        p.destroy();
        if (!p.waitFor(2, TimeUnit.SECONDS)) {
          p.destroyForcibly().waitFor();
        }
      }
    } catch (InterruptedException e) {
      p.destroyForcibly();
      Thread.currentThread().interrupt();
    }
  }

  private static String command(List<String> command, String input) {
    try {
      Process p = new ProcessBuilder(command).start();
      CompletableFuture<String> err = new CompletableFuture<>();
      Thread errReader = new Thread(() -> err.complete(readAll(p.getErrorStream())), "lab-stderr");
      errReader.setDaemon(true);
      errReader.start();
      try (OutputStream in = p.getOutputStream()) {
        if (input != null) {
          in.write(input.getBytes(StandardCharsets.UTF_8));
        }
      }
      String out = readAll(p.getInputStream());
      if (!p.waitFor(COMMAND_TIMEOUT.toSeconds(), TimeUnit.SECONDS)) {
        p.destroyForcibly().waitFor();
        throw new IllegalStateException(String.join(" ", command) + ": timed out");
      }
      if (p.exitValue() != 0) {
        throw new IllegalStateException(String.join(" ", command) + ": exit " + p.exitValue() + ": "
            + err.join().trim());
      }
      return out;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  private static String readAll(InputStream in) {
    try (in) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    } catch (IOException e) {
      return "";
    }
  }

  private static String readLine(BufferedReader in) {
    try {
      return in.readLine();
    } catch (IOException e) {
      return null;
    }
  }

  /** {@code ng} + 4 hex digits that no existing namespace starts with. */
  private static String freshPrefix() {
    List<String> existing = List.of(command(List.of("ip", "netns", "list"), null).split("\n"));
    while (true) {
      String p = "ng" + HexFormat.of().toHexDigits((short) ThreadLocalRandom.current().nextInt(1 << 16));
      if (existing.stream().noneMatch(ns -> ns.startsWith(p))) {
        return p;
      }
    }
  }

  /** The interpreter itself, not a launcher shim (pyenv's forks): the PID we hold must be the process that runs. */
  private static String realPython() {
    String onPath = which("python3");
    return command(List.of(onPath, "-c", "import sys; print(sys.executable)"), null).trim();
  }

  private static String externalScript() {
    return script("/lab/external.py");
  }

  private static String script(String resource) {
    try (InputStream in = NetworkLab.class.getResourceAsStream(resource)) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    } catch (IOException | NullPointerException e) {
      throw new IllegalStateException(resource + " not on the test classpath", e);
    }
  }

  static String which(String tool) {
    String path = System.getenv().getOrDefault("PATH", "") + ":/usr/sbin:/sbin";
    return Stream.of(path.split(":")).filter(d -> !d.isEmpty()).map(d -> Path.of(d, tool))
        .filter(Files::isExecutable).map(Path::toString).findFirst().orElse(null);
  }

  /** CAP_NET_ADMIN (12) for links and rules, CAP_SYS_ADMIN (21) for namespaces, in this process's effective set. */
  private static boolean hasCapabilities() {
    try {
      return Files.readAllLines(Path.of("/proc/self/status")).stream().filter(l -> l.startsWith("CapEff:"))
          .map(l -> Long.parseUnsignedLong(l.substring(7).trim(), 16))
          .anyMatch(caps -> (caps & (1L << 12)) != 0 && (caps & (1L << 21)) != 0);
    } catch (IOException | RuntimeException e) {
      return false;
    }
  }
}
