package io.natgate.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.natgate.api.v1alpha1.AllowEntry;
import io.natgate.api.v1alpha1.ConnectionLogState;
import io.natgate.api.v1alpha1.PortRange;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.api.v1alpha1.NodeGatewayState.Snat;
import io.natgate.api.v1alpha1.NodeGatewayState.Steer;
import io.natgate.connlog.ConnectionLog;
import io.natgate.dataplane.Changes;
import io.natgate.dataplane.DataplaneSettings;
import io.natgate.dataplane.Kernel;
import io.natgate.dataplane.KernelPlan;
import io.natgate.dataplane.NodeDataplane;
import io.natgate.dataplane.Observed;
import io.natgate.dataplane.Renderer;
import io.natgate.lab.LabNode;
import io.natgate.lab.LabPod;
import io.natgate.lab.NetworkLab;
import java.time.Duration;
import io.natgate.Defaults;
import io.natgate.dns.DnsLatency;
import io.natgate.dns.DnsLab;
import io.natgate.peers.ReadySteering;
import io.natgate.plan.IpAddresses;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code make bench-dataplane}: the data path's throughput and the agent's programming time, in the network lab
 * (two nodes, one pod each). Prints tables; asserts only that traffic took the path it is measured for.
 * Arguments: {@code throughput}, {@code programming}, {@code first-steer}, {@code connections}, {@code allow},
 * {@code dns} (default all but first-steer); system properties
 * {@code bench.runs} (throughput runs, default 7), {@code bench.seconds} (per iperf3 run, 5),
 * {@code bench.repeats} (programming-time repeats, 5), {@code bench.warmup-seconds} (an unmeasured first phase of each
 * connections configuration, 5; 0 for none), {@code bench.time-wait-seconds} (conntrack's TIME_WAIT on the gateway
 * for the connections part, so that end records come within the runs; 0, the default, keeps the kernel's 120 s). Results and how to read them: docs/benchmarks.md.
 *
 * <p>Throughput: iperf3 from a pod to the external host: (a) the lab's CNI path with no natgate rules, (b) the
 * pod on the gateway node, SNATed there, (c) the pod on the other node, steered through the tunnel to the gateway;
 * (a2) and (d) split c's cost: the other node's pod on the CNI path, directly (a2) and routed through the gateway
 * node without a tunnel (d). Then b and c again with 10,000 and 50,000 IPs in the selected sets (the lab's pods
 * among them). Every run measures every configuration.
 *
 * <p>Connections: short TCP connections per second through the gateway with the connection log off and on
 * ({@code connections}), side by side in each run; and with no allow list and one of 128 entries whose last entry is
 * the one that matches ({@code allow}), likewise.
 *
 * <p>Programming time: {@link NodeDataplane#apply} on the gateway node for 1,000 to 50,000 selected IPs: a full apply
 * on a clean node, one pod more, and a restart (a new agent that observes the kernel and finds nothing to do).
 */
public final class DataplaneBenchmark {
  static final String EGRESS_IP = "198.18.0.100";
  static final int IPERF_PORT = 5201;
  static final List<Integer> THROUGHPUT_SIZES = List.of(1, 10_000, 50_000);
  static final List<Integer> PROGRAMMING_SIZES = List.of(1_000, 10_000, 50_000);
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String PLAIN = "a  plain (CNI masquerade), pod on node-1";
  private static final Pattern PEER = Pattern.compile("connected to ([0-9.]+) port");

  private final NetworkLab lab;
  private final int runs = Integer.getInteger("bench.runs", 7);
  private final int seconds = Integer.getInteger("bench.seconds", 5);
  private final int repeats = Integer.getInteger("bench.repeats", 5);
  private final int warmupSeconds = Integer.getInteger("bench.warmup-seconds", 5);
  private final int timeWaitSeconds = Integer.getInteger("bench.time-wait-seconds", 0);
  private final Set<String> peers = ConcurrentHashMap.newKeySet();

  private DataplaneBenchmark(NetworkLab lab) {
    this.lab = lab;
  }

  public static void main(String[] args) throws Exception {
    List<String> parts = args.length == 0 ? List.of("throughput", "programming", "connections", "allow", "dns")
        : Arrays.asList(args);
    String reason = NetworkLab.unavailableReason();
    if (reason != null) {
      System.err.println("cannot run: " + reason);
      System.exit(2);
    }
    int status = 0;
    try (NetworkLab lab = NetworkLab.withNodes(2).podsPerNode(1)) {
      lab.start();
      var bench = new DataplaneBenchmark(lab);
      System.out.printf("machine: %d cores, kernel %s, %s%n", Runtime.getRuntime().availableProcessors(),
          System.getProperty("os.version"), bench.loadAverage());
      if (parts.contains("throughput")) {
        bench.throughput();
      }
      if (parts.contains("programming")) {
        bench.programming();
      }
      if (parts.contains("first-steer")) {
        bench.firstSteer();
      }
      if (parts.contains("connections")) {
        bench.connections();
      }
      if (parts.contains("allow")) {
        bench.allowList();
      }
      if (parts.contains("dns")) {
        bench.dns();
      }
      bench.awaitQuiet();
    } catch (RuntimeException | Error e) {
      e.printStackTrace();
      status = 1;
    }
    System.exit(status); // exec:java would otherwise wait for lingering threads
  }

  // ---------------------------------------------------------------------------------------------- dns

  /**
   * The time a DNS query takes through the DNS path (the pod on the director asks for a name its gateway allows: the
   * proxy waits for the gateway's confirmation) beside the same query straight to the lab's server (the pod on the
   * gateway node, not followed), in alternating rounds so that both see the same machine.
   */
  void dns() {
    int rounds = 5;
    int perRound = Integer.getInteger("bench.dns-queries", 1000) / rounds;
    try (var lab = new DnsLab(this.lab, 1, List.of(2), 0, Duration.ofSeconds(Defaults.DNS_GRACE_S))) {
      List<Double> proxied = new ArrayList<>();
      List<Double> direct = new ArrayList<>();
      for (int r = 0; r < rounds; r++) {
        proxied.addAll(DnsLatency.times(lab.resolve(this.lab.pod(2, 1), DnsLab.ALLOWED, perRound, false)));
        direct.addAll(DnsLatency.times(lab.resolve(this.lab.pod(1, 1), DnsLab.ALLOWED, perRound, false)));
      }
      DnsLatency.print(proxied, direct);
    }
  }

  // ---------------------------------------------------------------------------------------------- throughput

  void throughput() throws Exception {
    LabNode gateway = lab.node(1);
    LabNode director = lab.node(2);
    LabPod onGateway = lab.pod(1, 1);
    LabPod onDirector = lab.pod(2, 1);
    NodeDataplane gw = dataplane(gateway);
    NodeDataplane dir = dataplane(director);

    Process server = start(lab.externalNs(), "iperf3", "-s", "-B", NetworkLab.EXTERNAL_IP, "-p",
        String.valueOf(IPERF_PORT), "--forceflush");
    try {
      Map<String, List<Double>> gbps = new LinkedHashMap<>();
      Map<Integer, List<KernelPlan>> plans = new LinkedHashMap<>(); // by set size: gateway's, director's
      for (int wanted : THROUGHPUT_SIZES) {
        List<String> sources = selected(wanted, List.of(onGateway.ip(), onDirector.ip()));
        plans.put(sources.size(), List.of(
            Renderer.render(spec(new Snat(EGRESS_IP, true, sources), null), gw.settings()),
            Renderer.render(spec(null, new Steer(EGRESS_IP, gateway.name(), gateway.ip(), sources)), dir.settings())));
      }
      List<Integer> sizes = List.copyOf(plans.keySet());
      // Every run measures every configuration, so that a noisy moment on a shared machine hits them all alike.
      for (int run = 1; run <= runs; run++) {
        System.out.printf("%nthroughput run %d of %d, %d s each%n", run, runs, seconds);
        gw.apply(KernelPlan.EMPTY);
        dir.apply(KernelPlan.EMPTY);
        measure(gbps, PLAIN, onGateway, gateway.ip());
        measure(gbps, "a2 plain (CNI masquerade), pod on node-2", onDirector, director.ip());
        viaGatewayNode(true);
        measure(gbps, "d  plain via node-1 (no tunnel), pod on node-2", onDirector, director.ip());
        viaGatewayNode(false);
        for (int size : sizes) {
          gw.apply(plans.get(size).get(0));
          dir.apply(plans.get(size).get(1));
          measure(gbps, "b  SNAT on the gateway, " + size, onGateway, EGRESS_IP);
          measure(gbps, "c  tunnel to the gateway, " + size, onDirector, EGRESS_IP);
        }
      }
      gw.apply(KernelPlan.EMPTY);
      dir.apply(KernelPlan.EMPTY);

      System.out.printf("%n| configuration | set size | runs (Gbit/s) | median Gbit/s | / a |%n"
          + "|---|---:|---|---:|---:|%n");
      double a = median(gbps.get(PLAIN));
      for (var e : gbps.entrySet()) {
        String name = e.getKey();
        String size = name.matches(".*, \\d+$")
            ? String.format("%,d", Integer.parseInt(name.replaceAll(".*, ", ""))) : "-";
        System.out.printf("| %s | %s | %s | %.2f | %.3f |%n", name.replaceAll(", \\d+$", ""), size,
            e.getValue().stream().map(v -> String.format("%.2f", v)).toList(), median(e.getValue()),
            median(e.getValue()) / a);
      }
      // Ratios of medians, and the median of the ratios within each run (paired: less sensitive to drifting load).
      List<Double> b = gbps.get("b  SNAT on the gateway, " + sizes.get(0));
      List<Double> c = gbps.get("c  tunnel to the gateway, " + sizes.get(0));
      List<Double> a2 = gbps.get("a2 plain (CNI masquerade), pod on node-2");
      List<Double> d = gbps.get("d  plain via node-1 (no tunnel), pod on node-2");
      System.out.printf("%n| ratio | of medians | median of per-run ratios |%n|---|---:|---:|%n");
      ratio("b/a (SNAT vs plain)", b, gbps.get(PLAIN));
      ratio("c/a (tunnel vs plain)", c, gbps.get(PLAIN));
      ratio("d/a2 (the extra hop through node-1)", d, a2);
      ratio("c/d (the tunnel itself)", c, d);
      for (String role : List.of("b  SNAT on the gateway, ", "c  tunnel to the gateway, ")) {
        for (int size : sizes.subList(1, sizes.size())) {
          String name = String.format("%s: %,d IPs / %d IPs", role.substring(3, role.length() - 2), size, sizes.get(0));
          ratio(name, gbps.get(role + size), gbps.get(role + sizes.get(0)));
        }
      }
    } finally {
      server.destroy(); // our own iperf3 server, by its handle (ip netns exec execs it: same PID)
      if (!server.waitFor(5, TimeUnit.SECONDS)) {
        server.destroyForcibly().waitFor();
      }
    }
  }

  private static void ratio(String name, List<Double> x, List<Double> y) {
    List<Double> perRun = new ArrayList<>();
    for (int i = 0; i < x.size(); i++) {
      perRun.add(x.get(i) / y.get(i));
    }
    System.out.printf("| %s | %.3f | %.3f |%n", name, median(x) / median(y), median(perRun));
  }

  /**
   * Configuration d, to tell the tunnel's cost from the extra hop's: node-2 routes the external host through node-1
   * (no tunnel, no natgate rules), so its pod's packets cross two nodes as in c. Node-1 must not send ICMP redirects,
   * or node-2 would learn the direct way.
   */
  private void viaGatewayNode(boolean on) {
    LabNode gateway = lab.node(1);
    String route = NetworkLab.EXTERNAL_IP + "/32";
    String redirects = on ? "0" : "1";
    lab.exec(gateway.ns(), "sysctl", "-q", "-w", "net.ipv4.conf.all.send_redirects=" + redirects,
        "net.ipv4.conf." + gateway.uplink() + ".send_redirects=" + redirects);
    lab.exec(lab.node(2).ns(), "ip", "route", on ? "add" : "del", route, "via", gateway.ip());
  }

  /** One iperf3 run from the pod; checks that the server saw the expected source, records Gbit/s. */
  private void measure(Map<String, List<Double>> results, String name, LabPod pod, String expectedSource)
      throws Exception {
    Optional<String> seen = lab.seenSource(pod);
    if (!seen.equals(Optional.of(expectedSource))) {
      throw new IllegalStateException(name + ": echo server saw " + seen + ", expected " + expectedSource);
    }
    peers.clear();
    String out = retry(() -> lab.exec(pod.ns(), "iperf3", "-c", NetworkLab.EXTERNAL_IP, "-p",
        String.valueOf(IPERF_PORT), "-t", String.valueOf(seconds), "-J"));
    JsonNode end = JSON.readTree(out).path("end");
    double gbps = end.path("sum_received").path("bits_per_second").asDouble() / 1e9;
    Thread.sleep(200); // the server's line about the data connection
    if (!peers.equals(Set.of(expectedSource))) {
      throw new IllegalStateException(name + ": iperf3 server saw " + peers + ", expected " + expectedSource);
    }
    System.out.printf("  %-45s %6.2f Gbit/s (retransmits %d)%n", name, gbps,
        end.path("sum_sent").path("retransmits").asLong());
    results.computeIfAbsent(name, k -> new ArrayList<>()).add(gbps);
  }

  /** iperf3's server handles one test at a time: a client that comes while it is still busy is refused. */
  private static String retry(Supplier<String> run) throws InterruptedException {
    for (int attempt = 1; ; attempt++) {
      try {
        return run.get();
      } catch (IllegalStateException e) {
        if (attempt == 5) {
          throw e;
        }
        Thread.sleep(500);
      }
    }
  }

  private Process start(String ns, String... command) {
    List<String> argv = new ArrayList<>(lab.nsCommandPrefix(ns));
    argv.addAll(List.of(command));
    try {
      Process p = new ProcessBuilder(argv).redirectErrorStream(true).start();
      Thread reader = new Thread(() -> {
        try (var in = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
          for (String line = in.readLine(); line != null; line = in.readLine()) {
            Matcher m = PEER.matcher(line);
            if (m.find()) {
              peers.add(m.group(1));
            }
          }
        } catch (IOException e) {
          // the server ended
        }
      }, "iperf3-server");
      reader.setDaemon(true);
      reader.start();
      return p;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  // ---------------------------------------------------------------------------------------------- programming

  void programming() {
    LabNode gateway = lab.node(1);
    LabPod pod = lab.pod(1, 1);
    warmUp(gateway, pod);
    System.out.printf("%nprogramming time on %s (gateway role, one egress IP), %d repeats, ms: median / p95 / max%n",
        gateway.name(), repeats);
    System.out.printf("%n| selected IPs | render | full apply | one-pod change | restart (observe + no-op) |%n"
        + "|---:|---:|---:|---:|---:|%n");
    for (int size : PROGRAMMING_SIZES) {
      List<Double> render = new ArrayList<>();
      List<Double> full = new ArrayList<>();
      List<Double> change = new ArrayList<>();
      List<Double> restart = new ArrayList<>();
      for (int r = 0; r < repeats; r++) {
        dataplane(gateway).apply(KernelPlan.EMPTY); // clean node: nothing of ours in the kernel
        List<String> sources = selected(size, List.of(pod.ip()));
        NodeDataplane fresh = dataplane(gateway);
        long t0 = System.nanoTime();
        KernelPlan plan = Renderer.render(spec(new Snat(EGRESS_IP, true, sources), null), fresh.settings());
        long t1 = System.nanoTime();
        fresh.apply(plan);
        long t2 = System.nanoTime();
        render.add(ms(t1 - t0));
        full.add(ms(t2 - t1));

        // One pod more: what the agent does when one pod starts (render and apply, as the agent would).
        List<String> more = new ArrayList<>(sources);
        more.add(ip(IpAddresses.toLong("198.19.31.0") + r));
        more.sort(IpAddresses.ORDER);
        long t3 = System.nanoTime();
        fresh.apply(Renderer.render(spec(new Snat(EGRESS_IP, true, more), null), fresh.settings()));
        change.add(ms(System.nanoTime() - t3));

        // Restart: a new agent with nothing in memory observes the kernel, finds it matches, changes nothing.
        NodeDataplane restarted = dataplane(gateway);
        KernelPlan again = Renderer.render(spec(new Snat(EGRESS_IP, true, more), null), restarted.settings());
        long t4 = System.nanoTime();
        if (restarted.apply(again).changed()) {
          throw new IllegalStateException("a restarted agent changed a kernel that already matched");
        }
        restart.add(ms(System.nanoTime() - t4));
      }
      if (!lab.seenSource(pod).equals(Optional.of(EGRESS_IP))) {
        throw new IllegalStateException("after programming " + size + " IPs the pod does not leave with " + EGRESS_IP);
      }
      System.out.printf("| %,d | %s | %s | %s | %s |%n", size, stats(render), stats(full), stats(change),
          stats(restart));
    }
    dataplane(gateway).apply(KernelPlan.EMPTY);
  }

  /**
   * A director's first steered pod (issue 15): the apply of a node whose agent runs with no gateway, from nothing (as
   * before the base) and from the base ({@link Renderer#base}), alternating within each repeat and which goes first,
   * with the same running {@link NodeDataplane} (it trusts what it applied last, as a running agent does).
   */
  void firstSteer() {
    LabNode gateway = lab.node(1);
    LabNode directorNode = lab.node(2);
    LabPod pod = lab.pod(2, 1);
    int rounds = Math.max(repeats, 10);
    NodeDataplane gw = dataplane(gateway);
    NodeDataplane director = dataplane(directorNode);
    gw.apply(Renderer.render(spec(new Snat(EGRESS_IP, true, List.of(pod.ip())), null), gw.settings()));
    KernelPlan steered = Renderer.render(spec(null, new Steer(EGRESS_IP, gateway.name(), gateway.ip(),
        List.of(pod.ip()))), director.settings());
    Map<String, KernelPlan> starts = new LinkedHashMap<>();
    starts.put("from nothing", KernelPlan.EMPTY);
    starts.put("from the base", Renderer.base(director.settings()));
    // A peer group member (the director is a standby of the gateway's IP): its steering kept ready, empty.
    var member = spec(null, null).get("bench");
    member.peers = new NodeGatewayState.Peers();
    member.peers.members = List.of(new NodeGatewayState.Member(gateway.name(), gateway.ip()),
        new NodeGatewayState.Member(directorNode.name(), directorNode.ip()));
    member.peers.successions = List.of(new NodeGatewayState.Succession(EGRESS_IP, gateway.name(),
        List.of(directorNode.name())));
    starts.put("a member's steering kept ready", Renderer.render(ReadySteering.with(Map.of("bench", member),
        directorNode.name()), director.settings()));
    Map<String, List<Double>> times = new LinkedHashMap<>();
    starts.keySet().forEach(name -> times.put(name, new ArrayList<>()));
    for (int r = 0; r < rounds + 2; r++) { // the first two warm up, unmeasured
      List<String> order = new ArrayList<>(starts.keySet());
      java.util.Collections.rotate(order, r); // each start goes first in turn
      for (String name : order) {
        director.apply(starts.get(name));
        long t0 = System.nanoTime();
        director.apply(steered);
        if (r >= 2) {
          times.get(name).add(ms(System.nanoTime() - t0));
        }
        if (r == 2 && !lab.seenSource(pod).equals(Optional.of(EGRESS_IP))) {
          throw new IllegalStateException(name + ": the steered pod does not leave with " + EGRESS_IP);
        }
      }
    }
    System.out.printf("%na director's first steered pod (one gateway, one egress IP), %d repeats alternating, %s%n",
        rounds, loadAverage());
    System.out.printf("%n| start | processes | apply ms: median / p95 / max |%n|---|---:|---:|%n");
    starts.forEach((name, start) -> System.out.printf("| %s | %d | %s |%n", name,
        processes(Changes.between(Observed.after(start, 1500), steered, director.settings())),
        stats(times.get(name))));
    System.out.printf("%n| ratio | of medians | median per repeat |%n|---|---:|---:|%n");
    ratio("from the base / from nothing", times.get("from the base"), times.get("from nothing"));
    ratio("kept ready / from the base", times.get("a member's steering kept ready"), times.get("from the base"));
    director.apply(KernelPlan.EMPTY);
    gw.apply(KernelPlan.EMPTY);
  }

  /** How many processes an apply of {@code c} starts (each step that has something to do is one). */
  static int processes(Changes c) {
    int n = c.sysctls().size() + c.iptables().size();
    for (String batch : List.of(c.release(), c.ipBefore(), c.ipsetBefore(), c.hold(), c.ipsetAfter(), c.ipAfter())) {
      n += batch.isEmpty() ? 0 : 1;
    }
    return n;
  }

  private void warmUp(LabNode node, LabPod pod) {
    for (int i = 0; i < 3; i++) {
      NodeDataplane d = dataplane(node);
      d.apply(Renderer.render(spec(new Snat(EGRESS_IP, true, selected(10_000, List.of(pod.ip()))), null),
          d.settings()));
      d.apply(KernelPlan.EMPTY);
    }
  }

  // ---------------------------------------------------------------------------------------------- connections

  /**
   * Short connections per second through the gateway with the connection log off and on, alternating within each
   * run: both pods (one on the gateway, one steered) connect as fast as they can for {@code bench.seconds}.
   */
  void connections() throws Exception {
    LabNode gateway = lab.node(1);
    List<LabPod> pods = connectingPods();
    NodeDataplane gw = dataplane(gateway);
    NodeDataplane dir = dataplane(lab.node(2));
    List<String> sources = pods.stream().map(LabPod::ip).sorted(IpAddresses.ORDER).toList();
    Map<String, NodeGatewayState> off = spec(new Snat(EGRESS_IP, true, sources), null);
    Map<String, NodeGatewayState> on = spec(new Snat(EGRESS_IP, true, sources), null);
    on.get("bench").connectionLog = new ConnectionLogState(Map.of(sources.get(0), "bench/a", sources.get(1), "bench/b"));
    dir.apply(Renderer.render(spec(null, new Steer(EGRESS_IP, gateway.name(), gateway.ip(), List.of(lab.pod(2, 1).ip()))),
        dir.settings()));
    int port = 9100;
    Process server = lab.startConnectServer(port);
    Path file = Files.createTempFile("natgate-bench-connections", ".log");
    var defaults = ConnectionLog.Settings.defaults();
    var registry = new SimpleMeterRegistry();
    var settings = new ConnectionLog.Settings(file, defaults.maxFileBytes(), defaults.keepFiles(),
        defaults.queueSize(), defaults.socketBufferBytes());
    Map<String, List<Double>> rates = new LinkedHashMap<>();
    // Where the time goes, per connection: the whole machine's busy CPU, and this JVM's (the log's listener and
    // writer: nothing else runs in it during a phase).
    Map<String, List<Double>> machineCpu = new LinkedHashMap<>();
    Map<String, List<Double>> agentCpu = new LinkedHashMap<>();
    // How long the JIT compiled meanwhile (elapsed, so under load an upper bound of its CPU; none once all is compiled).
    Map<String, List<Double>> jit = new LinkedHashMap<>();
    var compiler = java.lang.management.ManagementFactory.getCompilationMXBean();
    var os = (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean();
    long made = 0;
    long failed = 0;
    try (var log = new ConnectionLog(new Kernel(lab.nsCommandPrefix(gateway.ns())), gateway.name(), settings,
        registry)) {
      if (timeWaitSeconds > 0) {
        lab.exec(gateway.ns(), "sysctl", "-q", "-w",
            "net.netfilter.nf_conntrack_tcp_timeout_time_wait=" + timeWaitSeconds);
      }
      System.out.printf("%nconnections per second, %d runs of %d s, two pods at once, conntrack TIME_WAIT %s; %s%n",
          runs, seconds, timeWaitSeconds > 0 ? timeWaitSeconds + " s" : "the kernel's", loadAverage());
      // An agent that runs for days compiled its record path long ago; this JVM has not: an unmeasured first phase
      // of each configuration lets it, so that the runs compare the two steady states.
      if (warmupSeconds > 0) {
        for (boolean logging : List.of(false, true)) {
          Map<String, NodeGatewayState> state = logging ? on : off;
          log.update(state);
          gw.apply(Renderer.render(state, gw.settings()));
          ConnectionRate r = connectionRate(pods, port, warmupSeconds);
          if (logging) {
            made += r.ok();
            failed += r.failed();
          }
        }
        System.out.printf("  warm-up: %d s of each configuration, not measured%n", warmupSeconds);
      }
      for (int run = 1; run <= runs; run++) {
        for (boolean logging : run % 2 == 1 ? List.of(false, true) : List.of(true, false)) {
          Map<String, NodeGatewayState> state = logging ? on : off;
          log.update(state);
          gw.apply(Renderer.render(state, gw.settings()));
          long busyBefore = busyCpuNanos();
          long jvmBefore = os.getProcessCpuTime();
          long jitBefore = compiler.getTotalCompilationTime();
          ConnectionRate r = connectionRate(pods, port, seconds);
          double rate = r.rate();
          long ok = r.ok();
          if (logging) {
            made += r.ok();
            failed += r.failed();
          }
          String name = logging ? "log on" : "log off";
          machineCpu.computeIfAbsent(name, k -> new ArrayList<>()).add((busyCpuNanos() - busyBefore) / 1e3 / ok);
          agentCpu.computeIfAbsent(name, k -> new ArrayList<>()).add((os.getProcessCpuTime() - jvmBefore) / 1e3 / ok);
          jit.computeIfAbsent(name, k -> new ArrayList<>())
              .add((compiler.getTotalCompilationTime() - jitBefore) * 1e3 / ok);
          System.out.printf("  run %d %-8s %8.0f connections/s%n", run, name, rate);
          rates.computeIfAbsent(name, k -> new ArrayList<>()).add(rate);
        }
      }
      long drainStart = System.nanoTime();
      boolean drained = log.drain(java.time.Duration.ofSeconds(180));
      System.out.printf("log on: the writer caught up %.1f s after the last run%s%n",
          (System.nanoTime() - drainStart) / 1e9, drained ? "" : " (not within 180 s)");
    } finally {
      server.getOutputStream().close();
      server.waitFor();
      gw.apply(KernelPlan.EMPTY);
      dir.apply(KernelPlan.EMPTY);
    }
    // The file rotates at its size limit (file.1, file.2, ...): count the records in every part, then remove them.
    long starts = 0;
    for (int part = 0; ; part++) {
      Path p = part == 0 ? file : file.resolveSibling(file.getFileName() + "." + part);
      if (!Files.exists(p)) {
        break;
      }
      try (var lines = Files.lines(p)) {
        starts += lines.filter(l -> l.contains("\"event\":\"start\"")).count();
      }
      Files.delete(p);
    }
    System.out.printf("%n| configuration | connections/s p50 / p95 / max | machine CPU µs per connection p50 | "
        + "agent (JVM) CPU µs per connection p50 | of which JIT compiling p50 |%n|---|---:|---:|---:|---:|%n");
    rates.forEach((name, v) -> System.out.printf("| %s | %s | %.1f | %.1f | %.1f |%n", name,
        stats(v).replace(".0", ""), median(machineCpu.get(name)), median(agentCpu.get(name)), median(jit.get(name))));
    System.out.printf("%n| ratio | of medians | median of per-run ratios |%n|---|---:|---:|%n");
    ratio("log on / log off", rates.get("log on"), rates.get("log off"));
    System.out.printf("%nlog on: %,d connections made (and %,d failed), %,d start records, %.0f records dropped, "
        + "%.0f conntrack events dropped by the kernel (reported %.0f times); %s%n", made, failed, starts,
        registry.find("natgate_agent_connlog_records_dropped_total").counters().stream().mapToDouble(c -> c.count())
            .sum(), registry.get("natgate_agent_connlog_events_dropped_total").counter().count(),
        registry.get("natgate_agent_connlog_events_lost_total").counter().count(), loadAverage());
  }

  /** Busy CPU time of the whole machine so far (all but idle and iowait in /proc/stat), in nanoseconds. */
  static long busyCpuNanos() throws IOException {
    String[] f = Files.readAllLines(Path.of("/proc/stat")).get(0).trim().split("\\s+");
    long busy = 0;
    for (int i = 1; i <= 8 && i < f.length; i++) {
      if (i != 4 && i != 5) { // idle, iowait
        busy += Long.parseLong(f[i]);
      }
    }
    return busy * 10_000_000L; // USER_HZ = 100
  }

  /**
   * Short connections per second with no allow list and with one of 128 entries (127 CIDRs on port 443 that do not
   * match, then the external host's /25 on the server's port), alternating within each run, the log off: what
   * checking a new connection against the longest list costs.
   */
  void allowList() throws Exception {
    LabNode gateway = lab.node(1);
    List<LabPod> pods = connectingPods();
    NodeDataplane gw = dataplane(gateway);
    NodeDataplane dir = dataplane(lab.node(2));
    List<String> sources = pods.stream().map(LabPod::ip).sorted(IpAddresses.ORDER).toList();
    int port = 9200;
    Map<String, NodeGatewayState> none = spec(new Snat(EGRESS_IP, true, sources), null);
    Map<String, NodeGatewayState> listed = spec(new Snat(EGRESS_IP, true, sources), null);
    List<AllowEntry> allow = new ArrayList<>();
    for (int i = 0; i < 127; i++) {
      allow.add(AllowEntry.cidr("198.51." + i + ".0/24", PortRange.tcp(443)));
    }
    allow.add(AllowEntry.cidr("203.0.113.0/25", PortRange.tcp(port)));
    listed.get("bench").allow = allow;
    dir.apply(Renderer.render(spec(null, new Steer(EGRESS_IP, gateway.name(), gateway.ip(), List.of(lab.pod(2, 1).ip()))),
        dir.settings()));
    Process server = lab.startConnectServer(port);
    Map<String, List<Double>> rates = new LinkedHashMap<>();
    try {
      System.out.printf("%nconnections per second with and without an allow list, %d runs of %d s, two pods at "
          + "once; %s%n", runs, seconds, loadAverage());
      for (int run = 1; run <= runs; run++) {
        for (boolean withList : run % 2 == 1 ? List.of(false, true) : List.of(true, false)) {
          gw.apply(Renderer.render(withList ? listed : none, gw.settings()));
          ConnectionRate r = connectionRate(pods, port, seconds);
          String name = withList ? "allow list of 128" : "no allow list";
          System.out.printf("  run %d %-17s %8.0f connections/s (%d made, %d failed)%n", run, name, r.rate(), r.ok(),
              r.failed());
          rates.computeIfAbsent(name, k -> new ArrayList<>()).add(r.rate());
        }
      }
    } finally {
      server.getOutputStream().close();
      server.waitFor();
      gw.apply(KernelPlan.EMPTY);
      dir.apply(KernelPlan.EMPTY);
    }
    System.out.printf("%n| configuration | connections/s p50 / p95 / max |%n|---|---:|%n");
    rates.forEach((name, v) -> System.out.printf("| %s | %s |%n", name, stats(v).replace(".0", "")));
    System.out.printf("%n| ratio | of medians | median of per-run ratios |%n|---|---:|---:|%n");
    ratio("allow list of 128 / none", rates.get("allow list of 128"), rates.get("no allow list"));
    System.out.printf("%n%s%n", loadAverage());
  }

  // ---------------------------------------------------------------------------------------------- helpers

  /** The two pods that connect (one on the gateway, one steered), ready to make many short connections. */
  private List<LabPod> connectingPods() {
    List<LabPod> pods = List.of(lab.pod(1, 1), lab.pod(2, 1));
    for (LabPod pod : pods) {
      // The client closes first: let its ports in TIME_WAIT be reused, or the runs would run out of them.
      lab.exec(pod.ns(), "sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65535");
    }
    return pods;
  }

  /** Connections per second of the pods together, and how many they made and failed. */
  private record ConnectionRate(double rate, long ok, long failed) {
  }

  /** Both pods connect to the external host as fast as 8 threads each can, for {@code seconds}. */
  private ConnectionRate connectionRate(List<LabPod> pods, int port, int seconds) throws IOException {
    double rate = 0;
    long ok = 0;
    long failed = 0;
    List<java.util.concurrent.CompletableFuture<String>> clients = pods.stream()
        .map(pod -> java.util.concurrent.CompletableFuture.supplyAsync(() -> lab.connectClient(pod.ns(), "--to",
            NetworkLab.EXTERNAL_IP, "--port", String.valueOf(port), "--seconds", String.valueOf(seconds),
            "--threads", "8")))
        .toList();
    for (var c : clients) {
      JsonNode r = JSON.readTree(c.join());
      rate += r.path("ok").asDouble() / r.path("seconds").asDouble();
      ok += r.path("ok").asLong();
      failed += r.path("failed").asLong();
    }
    return new ConnectionRate(rate, ok, failed);
  }

  /**
   * Waits (up to 10 s) for the gratuitous ARPs the agents started to end by themselves, so that closing the lab
   * finds no process in a node's namespace.
   */
  private void awaitQuiet() throws IOException, InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    for (LabNode node : lab.nodes()) {
      while (System.nanoTime() < deadline) {
        Process p = new ProcessBuilder("ip", "netns", "pids", node.ns()).redirectErrorStream(true).start();
        String pids = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
        p.waitFor();
        if (pids.isEmpty()) {
          break;
        }
        Thread.sleep(100); // otherwise the lab's close() reports them
      }
    }
  }

  private NodeDataplane dataplane(LabNode node) {
    return new NodeDataplane(new Kernel(lab.nsCommandPrefix(node.ns())), DataplaneSettings.defaults(node.uplink()));
  }

  /**
   * {@code size} pod IPs, sorted as the operator writes them: the lab's real pods, then fillers from 198.19.32.0
   * up (inside the pod CIDR 198.19.0.0/16, clear of the lab's 198.19.1-9.x). Never fewer than the real ones.
   */
  static List<String> selected(int size, List<String> real) {
    List<String> ips = new ArrayList<>(real);
    long first = IpAddresses.toLong("198.19.32.0");
    for (int i = 0; ips.size() < size; i++) {
      ips.add(ip(first + i));
    }
    ips.sort(IpAddresses.ORDER);
    return ips;
  }

  static String ip(long value) {
    return (value >>> 24 & 255) + "." + (value >>> 16 & 255) + "." + (value >>> 8 & 255) + "." + (value & 255);
  }

  static Map<String, NodeGatewayState> spec(Snat snat, Steer steer) {
    var g = new NodeGatewayState();
    g.cidrs = List.of("0.0.0.0/0");
    g.excludedCidrs = List.of(NetworkLab.POD_CIDR);
    if (snat != null) {
      g.snat = List.of(snat);
    }
    if (steer != null) {
      g.steer = List.of(steer);
    }
    var spec = new TreeMap<String, NodeGatewayState>();
    spec.put("bench", g);
    return spec;
  }

  private String loadAverage() {
    try {
      return "load average " + java.nio.file.Files.readString(java.nio.file.Path.of("/proc/loadavg")).trim();
    } catch (IOException e) {
      return "load average unknown";
    }
  }

  static double ms(long nanos) {
    return nanos / 1e6;
  }

  static double median(List<Double> values) {
    List<Double> sorted = values.stream().sorted().toList();
    int n = sorted.size();
    return n % 2 == 1 ? sorted.get(n / 2) : (sorted.get(n / 2 - 1) + sorted.get(n / 2)) / 2;
  }

  /** median / p95 / max; with few samples p95 is the nearest rank. */
  static String stats(List<Double> values) {
    List<Double> sorted = values.stream().sorted().toList();
    double p95 = sorted.get((int) Math.ceil(0.95 * sorted.size()) - 1);
    return String.format("%.1f / %.1f / %.1f", median(values), p95, sorted.get(sorted.size() - 1));
  }
}
