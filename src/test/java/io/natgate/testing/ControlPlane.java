package io.natgate.testing;

import io.fabric8.kubeapitest.KubeAPIServer;
import io.fabric8.kubeapitest.KubeAPIServerConfigBuilder;
import io.fabric8.kubernetes.api.model.NamespaceBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.authentication.TokenRequestBuilder;
import io.fabric8.kubernetes.client.Config;
import io.fabric8.kubernetes.client.ConfigBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientBuilder;
import io.natgate.Defaults;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

/**
 * A real etcd + kube-apiserver (RBAC on), built by src/tools/controlplane and started by fabric8's kube-api-test,
 * with the committed CRDs and config/rbac installed. One per test JVM; {@link ControlPlaneExtension} stops it.
 */
public final class ControlPlane implements AutoCloseable {
  public static final String OPERATOR_NAMESPACE = Defaults.HEARTBEAT_NAMESPACE;
  public static final String OPERATOR_SERVICE_ACCOUNT = "natgate-operator";
  public static final String AGENT_SERVICE_ACCOUNT = "natgate-agent";

  private final KubeAPIServer server;
  private final KubernetesClient admin;
  /** The kube-apiserver started again by {@link #restartApiServer}, stopped by {@link #close}. */
  private Process restarted;

  /** A control plane with natgate's CRDs and RBAC (tests get the shared one from {@link ControlPlaneExtension}). */
  public ControlPlane() {
    this(true, List.of());
  }

  private ControlPlane(boolean installNatgate, List<String> apiServerFlags) {
    Path binaries = binary("kube-apiserver");
    if (!Files.isExecutable(binaries)) {
      throw new IllegalStateException("no control plane at " + binaries + ": run src/tools/controlplane/build.sh "
          + "(make controlplane) first");
    }
    server = new KubeAPIServer(KubeAPIServerConfigBuilder.anAPIServerConfig()
        .withTestDir(testDir()).withApiServerVersion(version()).withUpdateKubeConfig(false)
        .withApiServerFlags(apiServerFlags).build());
    server.start();
    admin = new KubernetesClientBuilder().withConfig(Config.fromKubeconfig(server.getKubeConfigYaml())).build();
    if (installNatgate) {
      admin.namespaces().resource(new NamespaceBuilder().withNewMetadata().withName(OPERATOR_NAMESPACE).endMetadata()
          .build()).serverSideApply();
      applyDirectory(repo().resolve("crds"));
      applyDirectory(repo().resolve("config/rbac"));
    }
  }

  /**
   * A second control plane of its own, with nothing of natgate installed, for tests that install and uninstall
   * natgate themselves (the caller closes it). The shared one cannot serve them: with no namespace controller
   * here, a deleted natgate-system stays Terminating for good.
   */
  public static ControlPlane empty() {
    return new ControlPlane(false, List.of());
  }

  /**
   * A control plane with natgate installed whose API server writes an audit log: one JSON line per write (create,
   * update, patch, delete) made by the operator's ServiceAccount, into {@code auditLog}.
   */
  public static ControlPlane withOperatorAuditLog(Path auditLog) throws IOException {
    Path policy = auditLog.resolveSibling("audit-policy.yaml"); // beside the log, not left in /tmp
    Files.writeString(policy, """
        apiVersion: audit.k8s.io/v1
        kind: Policy
        omitStages: [RequestReceived]
        rules:
        - level: Metadata
          users: ["system:serviceaccount:%s:%s"]
          verbs: [create, update, patch, delete, deletecollection]
        - level: None
        """.formatted(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT));
    return new ControlPlane(true, List.of("--audit-policy-file=" + policy, "--audit-log-path=" + auditLog));
  }

  /** etcd, kube-apiserver or kubectl, as built by src/tools/controlplane. */
  public static Path binary(String name) {
    return Path.of(testDir(), "k8s", version() + "-linux-amd64", name);
  }

  /** A tool the Makefile builds from Go modules into $KUBE_API_TEST_DIR/tools (bundlevalidate, natgate-cni, cnitool). */
  public static Path tool(String name) {
    return Path.of(testDir(), "tools", name);
  }

  private static String testDir() {
    return System.getenv().getOrDefault("KUBE_API_TEST_DIR",
        Path.of(System.getProperty("user.home"), ".kubeapitest").toString());
  }

  private static String version() {
    return System.getProperty("natgate.kube.version", "1.34.4");
  }

  public static Path repo() {
    return Path.of(System.getProperty("natgate.repo.dir", "."));
  }

  /** Cluster admin (system:masters). For test set-up and assertions only. */
  public KubernetesClient admin() {
    return admin;
  }

  public String kubeConfigYaml() {
    return server.getKubeConfigYaml();
  }

  /** A client that authenticates as the operator's ServiceAccount: only config/rbac grants what it can do. */
  public KubernetesClient operatorClient() {
    return clientFor(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT);
  }

  public KubernetesClient clientFor(String namespace, String serviceAccount) {
    return clientWith(token(namespace, serviceAccount));
  }

  /** The agent of {@code node}, as its DaemonSet pod there authenticates: see {@link #agentToken}. */
  public KubernetesClient agentClient(String node) {
    return clientWith(agentToken(node));
  }

  private KubernetesClient clientWith(String token) {
    Config adminConfig = admin.getConfiguration();
    Config config = new ConfigBuilder().withMasterUrl(adminConfig.getMasterUrl())
        .withCaCertData(adminConfig.getCaCertData()).withCaCertFile(adminConfig.getCaCertFile())
        .withOauthToken(token).build();
    return new KubernetesClientBuilder().withConfig(config).build();
  }

  /** The same identity as {@link #clientFor}, as a kubeconfig file for a process of its own (caller deletes it). */
  public Path kubeconfigFor(String namespace, String serviceAccount) throws IOException {
    Config adminConfig = admin.getConfiguration();
    Path file = Files.createTempFile("natgate-" + serviceAccount, ".kubeconfig");
    Files.writeString(file, """
        apiVersion: v1
        kind: Config
        clusters: [{name: test, cluster: {server: %s, certificate-authority: %s}}]
        users: [{name: %s, user: {token: %s}}]
        contexts: [{name: test, context: {cluster: test, user: %s}}]
        current-context: test
        """.formatted(adminConfig.getMasterUrl(), adminConfig.getCaCertFile(), serviceAccount,
        token(namespace, serviceAccount), serviceAccount));
    return file;
  }

  /** A ServiceAccount token (one hour), as the kubelet would mount it. */
  public String token(String namespace, String serviceAccount) {
    var request = new TokenRequestBuilder().withNewSpec().withExpirationSeconds(3600L).endSpec().build();
    return admin.serviceAccounts().inNamespace(namespace).withName(serviceAccount).tokenRequest(request)
        .getStatus().getToken();
  }

  /**
   * The token the kubelet mounts into the agent's pod on {@code node}: bound to that pod, so the API server names
   * the node in the user's extra (authentication.kubernetes.io/node-name), which config/rbac/admission_policies.yaml
   * checks. The pod (natgate-agent-NODE, never run: there is no kubelet) is created when missing and kept, since the
   * token is valid only while it exists.
   */
  public String agentToken(String node) {
    String name = AGENT_SERVICE_ACCOUNT + "-" + node;
    Pod pod = admin.pods().inNamespace(OPERATOR_NAMESPACE).withName(name).get();
    if (pod == null) {
      pod = admin.pods().inNamespace(OPERATOR_NAMESPACE).resource(new PodBuilder().withNewMetadata().withName(name)
          .endMetadata().withNewSpec().withServiceAccountName(AGENT_SERVICE_ACCOUNT).withNodeName(node)
          .addNewContainer().withName("agent").withImage("natgate-agent").endContainer().endSpec().build()).create();
    }
    var request = new TokenRequestBuilder().withNewSpec().withExpirationSeconds(3600L).withNewBoundObjectRef()
        .withApiVersion("v1").withKind("Pod").withName(name).withUid(pod.getMetadata().getUid()).endBoundObjectRef()
        .endSpec().build();
    return admin.serviceAccounts().inNamespace(OPERATOR_NAMESPACE).withName(AGENT_SERVICE_ACCOUNT)
        .tokenRequest(request).getStatus().getToken();
  }

  /** Server-side applies every YAML file of a directory (not kustomization.yaml), as kubectl apply would. */
  public void applyDirectory(Path dir) {
    try (Stream<Path> files = Files.list(dir)) {
      for (Path f : files.filter(p -> p.toString().matches(".*\\.ya?ml$"))
          .filter(p -> !p.getFileName().toString().equals("kustomization.yaml")).sorted().toList()) {
        try (InputStream in = Files.newInputStream(f)) {
          admin.load(in).forceConflicts().serverSideApply();
        }
      }
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
    if (dir.endsWith("crds")) {
      admin.apiextensions().v1().customResourceDefinitions().list().getItems().forEach(crd -> admin.apiextensions().v1()
          .customResourceDefinitions().resource(crd).waitUntilCondition(c -> c.getStatus() != null
              && c.getStatus().getConditions().stream().anyMatch(x -> "Established".equals(x.getType())
                  && "True".equals(x.getStatus())), 30, java.util.concurrent.TimeUnit.SECONDS));
    }
  }

  /**
   * Stops the kube-apiserver process (SIGTERM, then SIGKILL after 10 s) and starts the same command again (same
   * port, certificates and etcd, which keeps running), as a control-plane upgrade or a crash-looping apiserver does.
   * kube-api-test stops the whole control plane when its apiserver exits, so it is told first that this stop is
   * expected (its own flag, by reflection: it has no restart). Returns once the new process is ready.
   */
  public synchronized void restartApiServer(java.time.Duration down) throws Exception {
    Object process = field(server, "kubeApiServerProcess");
    ProcessHandle old = restarted != null ? restarted.toHandle() : ProcessHandle.current().descendants()
        .filter(p -> p.info().command().map(c -> c.endsWith("kube-apiserver")).orElse(false)).findFirst()
        .orElseThrow();
    List<String> argv = List.of(Files.readString(Path.of("/proc/" + old.pid() + "/cmdline")).split("\0"));
    Path cwd = Path.of("/proc/" + old.pid() + "/cwd").toRealPath();
    setField(process, "stopped", true);
    old.destroy();
    try {
      old.onExit().get(10, java.util.concurrent.TimeUnit.SECONDS);
    } catch (java.util.concurrent.TimeoutException e) {
      old.destroyForcibly();
      old.onExit().get();
    }
    Thread.sleep(down.toMillis());
    Path log = repo().resolve("target/kube-apiserver-restarted.log");
    restarted = new ProcessBuilder(argv).directory(cwd.toFile()).redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile())).start();
    long deadline = System.nanoTime() + java.time.Duration.ofMinutes(2).toNanos();
    while (true) {
      try {
        admin.namespaces().withName(OPERATOR_NAMESPACE).get();
        return;
      } catch (io.fabric8.kubernetes.client.KubernetesClientException e) {
        if (!restarted.isAlive() || System.nanoTime() > deadline) {
          throw new IllegalStateException("the restarted kube-apiserver did not answer (see " + log + ")", e);
        }
        Thread.sleep(100);
      }
    }
  }

  private static Object field(Object o, String name) throws ReflectiveOperationException {
    var f = o.getClass().getDeclaredField(name);
    f.setAccessible(true);
    return f.get(o);
  }

  private static void setField(Object o, String name, Object value) throws ReflectiveOperationException {
    var f = o.getClass().getDeclaredField(name);
    f.setAccessible(true);
    f.set(o, value);
  }

  @Override
  public void close() {
    admin.close();
    if (restarted != null) {
      restarted.destroyForcibly();
      try {
        restarted.waitFor(10, java.util.concurrent.TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    server.stop(); // its own apiserver is already gone; this stops etcd
  }
}
