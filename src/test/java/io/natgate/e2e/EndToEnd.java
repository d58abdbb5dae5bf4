package io.natgate.e2e;

import static org.awaitility.Awaitility.await;

import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.apps.DaemonSetBuilder;
import io.fabric8.kubernetes.api.model.authentication.TokenRequestBuilder;
import io.fabric8.kubernetes.client.Config;
import io.fabric8.kubernetes.client.ConfigBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientBuilder;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.natgate.agent.Heartbeat;
import io.natgate.lab.LabNode;
import io.natgate.lab.NetworkLab;
import io.natgate.plan.NodeReadiness;
import io.natgate.reconcile.OperatorSettings;
import io.natgate.testing.Cluster;
import io.natgate.testing.ControlPlane;
import java.io.IOException;
import java.io.InputStream;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * natgate as a cluster runs it, on the network lab: the packaged operator as its own process under its
 * ServiceAccount, one packaged agent process per node namespace ({@code ip netns exec}) under the agent's
 * ServiceAccount with a token bound to a Pod object of its own, as a kubelet gives it (the {@value #DAEMON_SET}
 * DaemonSet exists as an object, no controller runs it), Node objects whose InternalIPs are the lab's node addresses. The agents reach the API server at
 * {@value #API_ADDRESS}:{@value #API_PORT} on the node network, served by a forwarder in the external host's
 * namespace that hands connections to this JVM over a Unix socket (a file, so it crosses namespaces; the root
 * namespace gets no lab address). Everything it starts, {@link #close()} stops, by PID.
 */
public final class EndToEnd implements AutoCloseable {
  public static final String API_ADDRESS = NetworkLab.EXTERNAL_GATEWAY;
  public static final int API_PORT = 6443;
  public static final String DAEMON_SET = "natgate-agent";

  private final NetworkLab lab;
  private final ControlPlane cp;
  private final Cluster cluster;
  private final Path dir;
  private final Path jar = ControlPlane.repo().resolve("target/quarkus-app/quarkus-run.jar").toAbsolutePath();
  private final String java = ProcessHandle.current().info().command().orElse("java");
  private final Map<String, Process> agents = new HashMap<>();
  private final List<Process> everything = new ArrayList<>();
  private UnixSocketBridge bridge;
  private Process forwarder;
  private Process operator;
  /** The Pod object each node's agent runs as, and the token bound to it. */
  private final Map<String, String> agentPods = new HashMap<>();
  private final Map<String, String> agentTokens = new HashMap<>();
  private Path operatorKubeconfig;
  private int starts;
  private boolean cni;
  private int operatorPort;
  private final Map<String, String> agentEnv = new HashMap<>();

  public EndToEnd(NetworkLab lab, ControlPlane cp) throws IOException {
    this.lab = lab;
    this.cp = cp;
    this.cluster = new Cluster(cp.admin());
    this.dir = Files.createTempDirectory("natgate-e2e");
  }

  /** Agents also answer natgate-cni, each at {@link #cniSocket} (call before {@link #start}). */
  public EndToEnd withCni() {
    cni = true;
    return this;
  }

  /** Agents get these environment variables too, e.g. NATGATE_AGENT_SNAT_PORTS (call before {@link #start}). */
  public EndToEnd withAgentEnv(Map<String, String> env) {
    agentEnv.putAll(env);
    return this;
  }

  /** The operator's /q/metrics, as Prometheus would scrape it. */
  public String operatorMetrics() throws IOException, InterruptedException {
    var http = HttpClient.newHttpClient();
    var request = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + operatorPort + "/q/metrics"))
        .timeout(Duration.ofSeconds(10)).build();
    return http.send(request, HttpResponse.BodyHandlers.ofString()).body();
  }

  /** The node's agent's /q/metrics (port 9741 in the node's namespace, fetched from there). */
  public String agentMetrics(LabNode n) {
    return lab.exec(n.ns(), lab.python(), "-c", "import sys, urllib.request; "
        + "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())",
        "http://" + n.ip() + ":9741/q/metrics");
  }

  public Path cniSocket(LabNode n) {
    return dir.resolve("cni-" + n.name() + ".sock");
  }

  /** Bridge, forwarder, Node objects (node-1 and node-2 egress candidates, node-3 a worker), operator, agents. */
  public EndToEnd start() throws Exception {
    if (!Files.exists(jar)) {
      throw new IllegalStateException("no packaged application at " + jar + ": run mvn package first");
    }
    URI api = URI.create(cp.admin().getConfiguration().getMasterUrl());
    Path socket = dir.resolve("api.sock");
    bridge = new UnixSocketBridge(socket, api.getHost(), api.getPort());
    forwarder = spawn(lab.nsCommandPrefix(lab.externalNs()), List.of(lab.python(), "-c", resource("/lab/tcp_to_unix.py"),
        API_ADDRESS, String.valueOf(API_PORT), socket.toString()), Map.of(), "forwarder");
    await("the API forwarder to start").atMost(Duration.ofSeconds(10)).pollInterval(Duration.ofMillis(50))
        .until(() -> Files.readString(log("forwarder")).contains("ready"));

    // What an agent checks as it stops: its DaemonSet there (a restart) or not (an uninstall).
    cp.admin().apps().daemonSets().inNamespace(ControlPlane.OPERATOR_NAMESPACE).resource(new DaemonSetBuilder()
        .withNewMetadata().withName(DAEMON_SET).endMetadata().withNewSpec()
        .withNewSelector().addToMatchLabels("app", DAEMON_SET).endSelector()
        .withNewTemplate().withNewMetadata().addToLabels("app", DAEMON_SET).endMetadata().withNewSpec()
        .addNewContainer().withName("agent").withImage("natgate-agent").endContainer().endSpec().endTemplate()
        .endSpec().build()).serverSideApply();
    operatorKubeconfig = Files.move(cp.kubeconfigFor(ControlPlane.OPERATOR_NAMESPACE,
        ControlPlane.OPERATOR_SERVICE_ACCOUNT), dir.resolve("operator.kubeconfig")); // removed with dir

    for (LabNode n : lab.nodes()) {
      cluster.node(n.name(), n.ip(), n.index() < 3 ? Map.of("node-role.kubernetes.io/egress", "") : Map.of());
    }
    startOperator();
    for (LabNode n : lab.nodes()) {
      startAgent(n); // one after the other: five JVMs starting at once on two cores starve each other's heartbeats
      await("the agent of " + n.name() + " to start").atMost(Duration.ofMinutes(2)).pollInterval(Duration.ofMillis(50))
          .until(() -> agentAlive(n));
    }
    return this;
  }

  /** Whether the node's agent renewed its Lease within the operator's timeout. */
  public boolean agentAlive(LabNode n) {
    var lease = cp.admin().leases().inNamespace(ControlPlane.OPERATOR_NAMESPACE).withName(Heartbeat.leaseName(n.name()))
        .get();
    return lease != null && NodeReadiness.agentAlive(lease, Instant.now(), OperatorSettings.defaults().heartbeatTimeout());
  }

  public Cluster cluster() {
    return cluster;
  }

  public void startOperator() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      operatorPort = s.getLocalPort();
    }
    operator = spawn(List.of(), List.of(java, "-XX:+UseSerialGC", "-Dquarkus.http.port=" + operatorPort,
        "-Dnatgate.leader-election.namespace=" + ControlPlane.OPERATOR_NAMESPACE, "-jar", jar.toString()),
        operatorEnv(), "operator");
  }

  /** -Dnatgate.e2e.operator-log=DEBUG: the operator logs io.natgate at that level (with natgate.e2e.keepLogs). */
  private Map<String, String> operatorEnv() {
    Map<String, String> env = new HashMap<>(Map.of("KUBECONFIG", operatorKubeconfig.toString()));
    String level = System.getProperty("natgate.e2e.operator-log");
    if (level != null) {
      env.put("QUARKUS_LOG_CATEGORY__IO_NATGATE__LEVEL", level);
    }
    return env;
  }

  /** SIGKILL: nothing runs on the way out. */
  public void killOperator() throws InterruptedException {
    kill(operator);
  }

  /**
   * Starts the operator again if it exited (it does when it loses its leader Lease, e.g. through an API outage
   * longer than the renew deadline), as its Deployment would. Whether it had to.
   */
  public boolean restartOperatorIfExited() throws IOException {
    if (operator.isAlive()) {
      return false;
    }
    startOperator();
    return true;
  }

  /** The kube-apiserver process this JVM's control plane runs (a child of this JVM). */
  public static ProcessHandle apiServer() {
    return ProcessHandle.current().descendants()
        .filter(p -> p.info().command().map(c -> c.endsWith("kube-apiserver")).orElse(false)).findFirst()
        .orElseThrow(() -> new IllegalStateException("no kube-apiserver among this JVM's processes"));
  }

  /**
   * Starts the node's agent as a new Pod of the DaemonSet would: a Pod object of its own, a token bound to it (valid
   * while the Pod exists).
   */
  public void startAgent(LabNode n) throws IOException {
    deleteAgentPod(n); // the one it replaces, if any
    String pod = DAEMON_SET + "-" + n.name() + "-" + (++starts);
    var created = cp.admin().pods().inNamespace(ControlPlane.OPERATOR_NAMESPACE).resource(new PodBuilder()
        .withNewMetadata().withName(pod).endMetadata().withNewSpec().withNodeName(n.name())
        .withServiceAccountName("natgate-agent").addNewContainer().withName("agent").withImage("natgate-agent")
        .endContainer().endSpec().build()).create();
    var request = new TokenRequestBuilder().withNewSpec().withExpirationSeconds(3600L).withNewBoundObjectRef()
        .withKind("Pod").withApiVersion("v1").withName(pod).withUid(created.getMetadata().getUid())
        .endBoundObjectRef().endSpec().build();
    String token = cp.admin().serviceAccounts().inNamespace(ControlPlane.OPERATOR_NAMESPACE).withName("natgate-agent")
        .tokenRequest(request).getStatus().getToken();
    agentPods.put(n.name(), pod);
    agentTokens.put(n.name(), token);
    // The agents' certificate check is off: the API server's certificate names 127.0.0.1, not the lab address.
    Path kubeconfig = dir.resolve(pod + ".kubeconfig");
    Files.writeString(kubeconfig, """
        apiVersion: v1
        kind: Config
        clusters: [{name: lab, cluster: {server: "https://%s:%d", insecure-skip-tls-verify: true}}]
        users: [{name: natgate-agent, user: {token: %s}}]
        contexts: [{name: lab, context: {cluster: lab, user: natgate-agent}}]
        current-context: lab
        """.formatted(API_ADDRESS, API_PORT, token));
    Map<String, String> env = new HashMap<>(Map.of("QUARKUS_PROFILE", "agent", "KUBECONFIG",
        kubeconfig.toString(), "NATGATE_AGENT_NODE_NAME", n.name(), "NATGATE_AGENT_NODE_IP", n.ip(),
        "NATGATE_HEARTBEAT_NAMESPACE", ControlPlane.OPERATOR_NAMESPACE, "NATGATE_AGENT_DAEMON_SET", DAEMON_SET));
    if (cni) {
      env.put("NATGATE_AGENT_CNI_SOCKET", cniSocket(n).toString());
    }
    env.putAll(agentEnv);
    String level = System.getProperty("natgate.e2e.agent-log"); // as natgate.e2e.operator-log, for the agents
    if (level != null) {
      env.put("QUARKUS_LOG_CATEGORY__IO_NATGATE__LEVEL", level);
    }
    agents.put(n.name(), spawn(lab.nsCommandPrefix(n.ns()),
        List.of(java, "-XX:+UseSerialGC", "-Xmx256m", "-jar", jar.toString()), env, "agent-" + n.name()));
  }

  /**
   * A restart of the node's agent, as its Pod deleted and replaced by the DaemonSet: SIGTERM, and once it has exited a
   * new one. {@code force}: the Pod object is removed first, as {@code kubectl delete --force --grace-period=0} does,
   * which makes the API server refuse its token; the agent stops with its credentials refused.
   */
  public void restartAgent(LabNode n, boolean force) throws Exception {
    if (force) {
      cp.admin().pods().inNamespace(ControlPlane.OPERATOR_NAMESPACE).withName(agentPods.get(n.name()))
          .withGracePeriod(0).delete();
      // The API server caches an accepted token for a few seconds: wait until it refuses this one.
      var config = new ConfigBuilder(Config.empty()).withMasterUrl(cp.admin().getConfiguration().getMasterUrl())
          .withTrustCerts(true).withOauthToken(agentTokens.get(n.name())).withRequestRetryBackoffLimit(0).build();
      try (var client = new KubernetesClientBuilder().withConfig(config).build()) {
        await("the API server to refuse the token of " + agentPods.get(n.name())).atMost(Duration.ofSeconds(30))
            .pollInterval(Duration.ofMillis(200)).until(() -> refused(client));
      }
    }
    Process p = agents.remove(n.name());
    long sigterm = System.nanoTime();
    p.destroy();
    if (!p.waitFor(60, TimeUnit.SECONDS)) {
      throw new IllegalStateException("the agent of " + n.name() + " did not stop within 60 s of SIGTERM");
    }
    System.out.printf("agent of %s stopped %d ms after SIGTERM%n", n.name(), (System.nanoTime() - sigterm) / 1_000_000);
    startAgent(n);
  }

  private void deleteAgentPod(LabNode n) {
    String pod = agentPods.remove(n.name());
    if (pod != null) {
      cp.admin().pods().inNamespace(ControlPlane.OPERATOR_NAMESPACE).withName(pod).withGracePeriod(0).delete();
    }
  }

  private static boolean refused(KubernetesClient client) {
    try {
      client.apps().daemonSets().inNamespace(ControlPlane.OPERATOR_NAMESPACE).withName(DAEMON_SET).get();
      return false;
    } catch (KubernetesClientException e) {
      return e.getCode() == 401;
    }
  }

  /**
   * Uninstalls the agents as README says: the DaemonSet deleted first, then each agent stopped (SIGTERM); each finds
   * its DaemonSet gone and removes natgate's kernel state.
   */
  public void uninstallAgents() throws InterruptedException {
    cp.admin().apps().daemonSets().inNamespace(ControlPlane.OPERATOR_NAMESPACE).withName(DAEMON_SET).delete();
    for (LabNode n : lab.nodes()) {
      Process p = agents.remove(n.name());
      if (p == null) {
        continue;
      }
      p.destroy();
      if (!p.waitFor(60, TimeUnit.SECONDS)) {
        throw new IllegalStateException("the agent of " + n.name() + " did not stop within 60 s of SIGTERM");
      }
    }
  }

  /** SIGKILL, as a crashed or OOM-killed agent: its kernel state stays behind. */
  public void killAgent(LabNode n) throws InterruptedException {
    kill(agents.remove(n.name()));
  }

  private Process spawn(List<String> prefix, List<String> command, Map<String, String> env, String name)
      throws IOException {
    List<String> argv = new ArrayList<>(prefix);
    argv.addAll(command);
    Path log = dir.resolve(name + "-" + (++starts) + ".log");
    Files.deleteIfExists(log(name));
    Files.createSymbolicLink(log(name), log.getFileName());
    var builder = new ProcessBuilder(argv).redirectErrorStream(true).redirectOutput(log.toFile());
    builder.environment().putAll(env);
    Process p = builder.start();
    everything.add(p);
    return p;
  }

  private Path log(String name) {
    return dir.resolve(name + ".log");
  }

  private static void kill(Process p) throws InterruptedException {
    if (p != null) {
      p.destroyForcibly();
      p.waitFor(10, TimeUnit.SECONDS);
    }
  }

  /**
   * Deletes the gateway and waits for it to go (its finalizer runs while the operator still does), stops everything,
   * deletes its node states (no garbage collector runs beside this API server: the next test class would find them),
   * the namespaces' pods and the namespaces.
   */
  public void closeDeleting(String gateway, String... namespaces) throws Exception {
    var gateways = cp.admin().resources(io.natgate.api.v1alpha1.EgressGateway.class);
    gateways.withName(gateway).delete();
    try {
      await().atMost(Duration.ofSeconds(30)).until(() -> gateways.withName(gateway).get() == null);
    } finally {
      close();
    }
    var states = cp.admin().resources(io.natgate.api.v1alpha1.EgressNodeState.class);
    states.list().getItems().stream().filter(st -> st.getSpec() != null && gateway.equals(st.getSpec().gateway))
        .forEach(st -> states.resource(st).delete());
    for (String ns : namespaces) {
      // No namespace controller either: a deleted namespace stays, terminating, with its pods (still selected).
      cp.admin().pods().inNamespace(ns).withGracePeriod(0).delete();
      cp.admin().namespaces().withName(ns).delete();
    }
  }

  @Override
  public void close() throws Exception {
    for (Process p : everything) {
      p.destroy(); // SIGTERM: agents leave their kernel state as it is, as on a rolling update
    }
    for (Process p : everything) {
      if (!p.waitFor(10, TimeUnit.SECONDS)) {
        kill(p);
      }
    }
    lab.nodes().forEach(this::deleteAgentPod);
    if (bridge != null) {
      bridge.close();
    }
    cluster.close();
    lab.nodes().forEach(n -> cluster.removeNode(n.name()));
    if (Boolean.getBoolean("natgate.e2e.keepLogs")) {
      System.out.println("e2e logs kept in " + dir);
      return;
    }
    try (Stream<Path> files = Files.walk(dir)) {
      files.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
    }
  }

  private static String resource(String name) throws IOException {
    try (InputStream in = EndToEnd.class.getResourceAsStream(name)) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
  }
}
