package io.natgate.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.fabric8.kubernetes.api.model.Condition;
import io.fabric8.kubernetes.api.model.LabelSelectorBuilder;
import io.fabric8.kubernetes.api.model.ObjectMetaBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.PodStatusBuilder;
import io.fabric8.kubernetes.client.Config;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientBuilder;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.fabric8.kubernetes.client.informers.ResourceEventHandler;
import io.fabric8.kubernetes.client.informers.SharedIndexInformer;
import io.fabric8.kubernetes.client.dsl.base.PatchContext;
import io.fabric8.kubernetes.client.dsl.base.PatchType;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.EgressGatewaySpec;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.Sources;
import io.natgate.config.OperatorBeans;
import io.natgate.testing.Cluster;
import io.natgate.testing.ControlPlane;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * `make bench-controlplane`: the packaged operator as its own process against a real kube-apiserver with 50 Node
 * objects (each with an agent renewing its Lease every 200 ms), 100 namespaces of 50 running pods each (5,000 pods,
 * every namespace spread over all nodes) and one EgressGateway per namespace. Prints, never asserts: start to ready,
 * time from applying the gateways and pods to all Ready (and Programmed, with a simulated agent reporting what it
 * applied), the operator's API writes to get there and in a no-op resync (a restart with nothing changed, from the
 * API server's audit log), and the operator's heap and RSS at idle and under load.
 */
public final class ControlPlaneBenchmark {
  static final int NODES = 50;
  static final int EGRESS_NODES = 10;
  static final int GATEWAYS = 100;
  static final int PODS_PER_GATEWAY = 50;
  static final String GROUP_LABEL = "bench.natgate.io/egress-group";
  static final Duration CONVERGE_WITHIN = Duration.ofMinutes(5);
  /** The agents' Lease timeout for the operator and the simulated agents (`make bench-controlplane HEARTBEAT_MS=…`). */
  static final Duration HEARTBEAT_TIMEOUT = Duration.ofMillis(Long.getLong("bench.heartbeat-timeout-ms", 900));
  /** JOSDK's micrometer counter of reconciliations started, one series per gateway (summed). */
  static final String RECONCILES = "operator_sdk_reconciliations_started_total{";

  private final ControlPlane cp;
  private final KubernetesClient client;
  private final Path jar = ControlPlane.repo().resolve("target/quarkus-app/quarkus-run.jar");
  private final Path out = ControlPlane.repo().resolve("target/bench");
  private final Path auditLog;
  private final Path kubeconfig;
  private final List<String[]> rows = new ArrayList<>();
  private final SharedIndexInformer<EgressGateway> gateways;
  private int operatorStarts;

  private ControlPlaneBenchmark(ControlPlane cp, Path auditLog) throws IOException {
    this.cp = cp;
    this.auditLog = auditLog;
    this.client = new KubernetesClientBuilder().withConfig(Config.fromKubeconfig(cp.kubeConfigYaml())).build();
    this.kubeconfig = cp.kubeconfigFor(ControlPlane.OPERATOR_NAMESPACE, ControlPlane.OPERATOR_SERVICE_ACCOUNT);
    this.gateways = client.resources(EgressGateway.class).inform();
  }

  public static void main(String[] args) throws Exception {
    Path out = ControlPlane.repo().resolve("target/bench");
    Files.createDirectories(out);
    Path auditLog = out.resolve("audit.log");
    Files.deleteIfExists(auditLog);
    if (!Files.exists(ControlPlane.repo().resolve("target/quarkus-app/quarkus-run.jar"))) {
      System.err.println("no target/quarkus-app/quarkus-run.jar: run `make build` first");
      System.exit(2);
    }
    say("machine: " + Runtime.getRuntime().availableProcessors() + " CPUs, load average " + loadAverage()
        + " (shared with other work: numbers are noisy)");
    PlanningBenchmark.main(args);
    ControlPlane cp = ControlPlane.withOperatorAuditLog(auditLog);
    // Also on Ctrl-C or a failure: etcd and kube-apiserver are processes of their own and would outlive this JVM.
    Runtime.getRuntime().addShutdownHook(new Thread(cp::close));
    try {
      new ControlPlaneBenchmark(cp, auditLog).run();
    } catch (Exception e) {
      e.printStackTrace();
      System.exit(1);
    }
    System.exit(0); // runs the hook; exec:java would otherwise wait for the clients' lingering threads
  }

  private void run() throws Exception {
    // The cluster the operator finds: nodes with live agents and labelled namespaces, no gateways, no pods.
    // The agents' renewals get a client of their own with room for all of them at once (the default allows 5 requests
    // per host in flight), so that the benchmark's own writes do not make Leases look late.
    Config agentsConfig = Config.fromKubeconfig(cp.kubeConfigYaml());
    agentsConfig.setMaxConcurrentRequests(NODES * 2);
    agentsConfig.setMaxConcurrentRequestsPerHost(NODES * 2);
    KubernetesClient agents = new KubernetesClientBuilder().withConfig(agentsConfig).build();
    try (Cluster cluster = new Cluster(agents, HEARTBEAT_TIMEOUT)) {
      // Only candidate nodes' Leases count (readiness is asked of candidates only): agents run on the egress nodes.
      // All 50 would add 200 Lease updates/s that, on this shared 2-CPU machine, made the egress nodes' own renewals
      // late past the operator's 900 ms timeout, and the numbers were those of failover storms.
      parallel(NODES, i -> {
        cluster.node(node(i), "10.0.0." + (i + 1), i < EGRESS_NODES ? Map.of(GROUP_LABEL, "g" + i / 2) : Map.of());
        if (i < EGRESS_NODES) {
          cluster.startAgent(node(i));
        }
      });
      parallel(GATEWAYS, g -> cluster.namespace(namespace(g), Map.of("team", namespace(g))));
      say(NODES + " nodes, agents renewing their Leases every 200 ms on the " + EGRESS_NODES + " egress nodes ("
          + EGRESS_NODES * 5 + " Lease updates/s on the API server; Lease timeout " + HEARTBEAT_TIMEOUT.toMillis()
          + " ms), " + GATEWAYS + " namespaces");

      OperatorProcess operator = startOperator();
      Thread.sleep(5000);
      memory(operator, "idle (nodes and namespaces, no gateways or pods)");

      try (SimulatedAgents reporter = new SimulatedAgents(client); Sampler sampler = new Sampler(operator)) {
        long applying = System.nanoTime();
        parallel(GATEWAYS, g -> client.resource(gateway(g)).create());
        parallel(GATEWAYS * PODS_PER_GATEWAY, this::runningPod);
        long applied = System.nanoTime();
        row("apply 100 gateways + 5,000 pods (client side, 8 threads)", ms(applied - applying));
        row("applying → all Ready (with selectedPods = 50)", awaitAll(applying,
            g -> isTrue(g, "Ready") && g.getStatus().selectedPods == PODS_PER_GATEWAY));
        row("applying → all Programmed (simulated agents report)", awaitAll(applying,
            g -> isTrue(g, "Ready") && isTrue(g, "Programmed") && g.getStatus().selectedPods == PODS_PER_GATEWAY));
        sampler.close();
        row("peak heap used / RSS while converging", mb(sampler.peakHeap) + " / " + mb(sampler.peakRss));
        row("agent status reports (EgressNodeState generations applied)", String.valueOf(reporter.reports.get()));
        Thread.sleep(3000);
        row("operator writes to converge", writes(0).toString());
        row("IPs moved or unassigned while converging (Events: a Lease renewal seen late)", String.valueOf(
            client.v1().events().inAnyNamespace().list().getItems().stream()
                .filter(e -> Set.of("EgressIPMoved", "EgressIPUnassigned").contains(e.getReason())).count()));
        row("reconciliations to converge", String.valueOf((long) operator.metric(
            RECONCILES)));
        memory(operator, "under load (100 gateways, 5,000 pods, 50 nodes)");

        // No-op resync: a restarted operator reconciles everything, with nothing changed.
        Map<String, String> before = resourceVersions();
        long auditLines = lines();
        operator.close();
        operator = startOperator();
        awaitReconciled(operator, GATEWAYS);
        Thread.sleep(5000);
        row("no-op resync (restart): operator writes", writes(auditLines).toString());
        row("no-op resync: objects whose resourceVersion changed", String.valueOf(changed(before, resourceVersions())));
        memory(operator, "after a restart under load");
      } finally {
        operator.close();
      }
    }
    agents.close();
    print();
  }

  private OperatorProcess startOperator() throws Exception {
    operatorStarts++;
    // Read before the start: the new operator may take the Lease before it answers ready.
    String previousHolder = holder();
    var operator = new OperatorProcess(jar, kubeconfig, ControlPlane.OPERATOR_NAMESPACE,
        out.resolve("operator-" + operatorStarts + ".log"),
        Map.of("natgate.heartbeat.timeout", HEARTBEAT_TIMEOUT.toMillis() + "ms"));
    Duration ready = operator.awaitReady(Duration.ofSeconds(120));
    long leader = System.nanoTime();
    // The reconciler starts once the leader Lease is taken (by this process: the previous one released it).
    while (holder() == null || holder().isEmpty() || holder().equals(previousHolder)) {
      Thread.sleep(50);
    }
    row("operator start → /q/health/ready (start " + operatorStarts + ")", ready.toMillis() + " ms"
        + (operatorStarts == 1 ? "" : ", leader Lease taken " + ms(System.nanoTime() - leader) + " later"));
    return operator;
  }

  private String holder() {
    var lease = client.leases().inNamespace(ControlPlane.OPERATOR_NAMESPACE).withName(OperatorBeans.LEASE_NAME).get();
    return lease == null || lease.getSpec() == null ? null : lease.getSpec().getHolderIdentity();
  }

  private void memory(OperatorProcess operator, String when) throws Exception {
    operator.saveMetrics(out.resolve("metrics-" + operatorStarts + "-" + rows.size() + ".txt"));
    long heap = operator.heapUsedBytes();
    operator.collectGarbage();
    row("heap used (live after full GC) / RSS, " + when,
        mb(heap) + " (" + mb(operator.heapUsedBytes()) + ") / " + mb(operator.rssBytes()));
  }

  private void awaitReconciled(OperatorProcess operator, int count) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(2);
    while (operator.metric(RECONCILES) < count) {
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("fewer than " + count + " reconciliations after 2 minutes");
      }
      Thread.sleep(100);
    }
  }

  /**
   * Waits until every gateway passes {@code done} (watching, not listing: 100 gateways listed every 100 ms were a
   * load of their own on the API server) and says how long that took from {@code since}, or how many got there
   * within {@link #CONVERGE_WITHIN} from now.
   */
  private String awaitAll(long since, Predicate<EgressGateway> done) throws InterruptedException {
    long deadline = System.nanoTime() + CONVERGE_WITHIN.toNanos();
    long count = 0;
    while (System.nanoTime() < deadline) {
      count = gateways.getStore().list().stream().filter(g -> g.getStatus() != null
          && g.getMetadata().getGeneration().equals(g.getStatus().observedGeneration) && done.test(g)).count();
      if (count == GATEWAYS) {
        return ms(System.nanoTime() - since);
      }
      Thread.sleep(50);
    }
    return "not within " + CONVERGE_WITHIN.toMinutes() + " min more: " + count + " of " + GATEWAYS;
  }

  private static boolean isTrue(EgressGateway g, String type) {
    return g.getStatus().conditions.stream().filter(c -> type.equals(c.getType())).map(Condition::getStatus)
        .anyMatch("True"::equals);
  }

  /** The operator's writes recorded in the audit log after its first {@code skip} lines, by verb and resource. */
  private Map<String, Integer> writes(long skip) throws IOException {
    ObjectMapper json = new ObjectMapper();
    Map<String, Integer> counts = new TreeMap<>();
    try (var lines = Files.lines(auditLog)) {
      for (String line : lines.skip(skip).toList()) {
        JsonNode e = json.readTree(line);
        JsonNode ref = e.path("objectRef");
        String key = e.path("verb").asText() + " " + ref.path("resource").asText()
            + (ref.has("subresource") ? "/" + ref.path("subresource").asText() : "");
        if (ref.path("name").asText().equals(OperatorBeans.LEASE_NAME)) {
          key = "leader election (" + key + ")";
        }
        counts.merge(key, 1, Integer::sum);
      }
    }
    counts.put("total", counts.entrySet().stream().filter(c -> !c.getKey().startsWith("leader"))
        .mapToInt(Map.Entry::getValue).sum());
    return counts;
  }

  private long lines() throws IOException {
    try (var lines = Files.lines(auditLog)) {
      return lines.count();
    }
  }

  private Map<String, String> resourceVersions() {
    Map<String, String> versions = new TreeMap<>();
    client.resources(EgressGateway.class).list().getItems().forEach(o -> versions.put("egw/" + o.getMetadata().getName(),
        o.getMetadata().getResourceVersion()));
    client.resources(EgressNodeState.class).list().getItems().forEach(o -> versions.put("state/"
        + o.getMetadata().getName(), o.getMetadata().getResourceVersion()));
    client.nodes().list().getItems().forEach(o -> versions.put("node/" + o.getMetadata().getName(),
        o.getMetadata().getResourceVersion()));
    client.v1().events().inAnyNamespace().list().getItems().forEach(o -> versions.put("event/"
        + o.getMetadata().getName(), o.getMetadata().getResourceVersion()));
    return versions;
  }

  private static long changed(Map<String, String> before, Map<String, String> after) {
    var keys = new java.util.HashSet<>(before.keySet());
    keys.addAll(after.keySet());
    return keys.stream().filter(k -> !java.util.Objects.equals(before.get(k), after.get(k))).count();
  }

  private void runningPod(int i) {
    int g = i / PODS_PER_GATEWAY;
    Pod pod = client.pods().inNamespace(namespace(g)).resource(new PodBuilder().withNewMetadata()
        .withName("pod-" + i % PODS_PER_GATEWAY).withNamespace(namespace(g)).withLabels(Map.of("app", "bench"))
        .endMetadata().withNewSpec().withNodeName(node(i % NODES)).addNewContainer().withName("app")
        .withImage("example.invalid/app:1").endContainer().endSpec().build()).create();
    String ip = "10.1." + i / 250 + "." + (i % 250 + 1);
    pod.setStatus(new PodStatusBuilder().withPhase("Running").withPodIP(ip).addNewPodIP(ip).build());
    client.pods().inNamespace(namespace(g)).resource(pod).updateStatus();
  }

  private static EgressGateway gateway(int g) {
    EgressGateway gw = new EgressGateway();
    gw.setMetadata(new ObjectMetaBuilder().withName("gw-" + String.format("%03d", g)).build());
    gw.setSpec(new EgressGatewaySpec());
    gw.getSpec().nodeSelector = new LabelSelectorBuilder().withMatchLabels(Map.of(GROUP_LABEL, "g" + g % 5)).build();
    gw.getSpec().egressIPs = new ArrayList<>(List.of("198.51.100." + (g + 1)));
    gw.getSpec().sources = new Sources(new LabelSelectorBuilder().withMatchLabels(Map.of("team", namespace(g))).build(),
        null);
    return gw;
  }

  private static String node(int i) {
    return "node-" + String.format("%02d", i);
  }

  private static String namespace(int g) {
    return "bench-" + String.format("%03d", g);
  }

  interface Task {
    void run(int i) throws Exception;
  }

  private static void parallel(int count, Task task) throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(8);
    try {
      List<Future<?>> futures = new ArrayList<>();
      for (int i = 0; i < count; i++) {
        int n = i;
        futures.add(pool.submit(() -> {
          task.run(n);
          return null;
        }));
      }
      for (Future<?> f : futures) {
        f.get();
      }
    } finally {
      pool.shutdown();
    }
  }

  /** What the agents would do, without a data plane: report every node state's generation as applied. */
  static final class SimulatedAgents implements AutoCloseable {
    final java.util.concurrent.atomic.AtomicInteger reports = new java.util.concurrent.atomic.AtomicInteger();
    private final KubernetesClient client;
    private final Map<String, Long> pending = new ConcurrentHashMap<>();
    private final ExecutorService workers = Executors.newFixedThreadPool(4);
    private final AutoCloseable informer;

    SimulatedAgents(KubernetesClient client) {
      this.client = client;
      informer = client.resources(EgressNodeState.class).inform(new ResourceEventHandler<>() {
        @Override
        public void onAdd(EgressNodeState s) {
          report(s);
        }

        @Override
        public void onUpdate(EgressNodeState old, EgressNodeState s) {
          report(s);
        }

        @Override
        public void onDelete(EgressNodeState s, boolean unknown) {
        }
      });
    }

    private void report(EgressNodeState s) {
      Long generation = s.getMetadata().getGeneration();
      if (s.getStatus() != null && generation.equals(s.getStatus().appliedGeneration)) {
        return;
      }
      // One report in flight per node, with the newest generation seen.
      if (pending.put(s.getMetadata().getName(), generation) == null) {
        workers.submit(() -> {
          Long g = pending.remove(s.getMetadata().getName());
          try {
            client.resources(EgressNodeState.class).withName(s.getMetadata().getName()).subresource("status")
                .patch(PatchContext.of(PatchType.JSON_MERGE), "{\"status\":{\"appliedGeneration\":" + g + "}}");
            reports.incrementAndGet();
          } catch (KubernetesClientException e) {
            // deleted meanwhile
          }
        });
      }
    }

    @Override
    public void close() throws Exception {
      informer.close();
      workers.shutdownNow();
    }
  }

  /** Peak heap and RSS of the operator, sampled every 500 ms. */
  static final class Sampler implements AutoCloseable {
    volatile long peakHeap;
    volatile long peakRss;
    private final java.util.concurrent.ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor();

    Sampler(OperatorProcess operator) {
      timer.scheduleWithFixedDelay(() -> {
        try {
          peakHeap = Math.max(peakHeap, operator.heapUsedBytes());
          peakRss = Math.max(peakRss, operator.rssBytes());
        } catch (Exception e) {
          // the operator is being restarted
        }
      }, 0, 500, TimeUnit.MILLISECONDS);
    }

    @Override
    public void close() {
      timer.shutdownNow();
    }
  }

  private void row(String what, String value) {
    rows.add(new String[] {what, value});
    System.out.println("  " + what + ": " + value);
  }

  private void print() {
    System.out.println("\n| Measurement | Value |\n|---|---|");
    rows.forEach(r -> System.out.println("| " + r[0] + " | " + r[1] + " |"));
  }

  private static String ms(long nanos) {
    return nanos / 1_000_000 + " ms";
  }

  private static String mb(long bytes) {
    return bytes / (1024 * 1024) + " MiB";
  }

  private static String loadAverage() {
    try {
      return Files.readString(Path.of("/proc/loadavg")).split(" ")[0];
    } catch (IOException e) {
      return "?";
    }
  }

  private static void say(String s) {
    System.out.println("\n==> " + s);
  }
}
