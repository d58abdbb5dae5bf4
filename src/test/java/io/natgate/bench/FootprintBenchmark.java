package io.natgate.bench;

import io.fabric8.kubernetes.api.model.NodeBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.testing.ControlPlane;
import java.io.IOException;
import java.io.InputStream;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * `make bench-footprint`: the operator and agent images as their manifests run them (memory limits of config/manager
 * and config/agent), against a real kube-apiserver, idle with one gateway on one node. Prints, never asserts: image
 * sizes, operator start to ready, agent start to its node's state applied (and the CPU time each JVM used to get
 * there), and each one's RSS after an idle minute's part ({@code bench.idle-seconds}, default 20). Images compared side by side, rounds alternating
 * ({@code bench.images}: operator=agent pairs separated by commas; {@code bench.rounds}, default 2). With
 * {@code bench.logs} (a directory), each container's output is kept there (e.g. of an image that logs class loading).
 * The operator runs on the host network (the API server listens on every address); the agent in a Docker network of
 * its own (its kernel changes stay in its container's network namespace), privileged there so that it can write its
 * namespace's /proc/sys as it writes the node's in a DaemonSet. Each gets its credentials as a pod does, not from a
 * kubeconfig (which would load YAML classes a pod never loads): KUBERNETES_SERVICE_HOST/PORT, and a token of its
 * ServiceAccount issued by the API server's TokenRequest (the agent's bound to a pod on its node), the CA and the
 * namespace mounted where the kubelet mounts them. Any failure (a container that stops, an Error) ends the run with
 * the reason and exit code 1, its containers and network removed.
 */
public final class FootprintBenchmark {
  /** This run's names: runs at once (the machine is shared) each have their own containers and network. */
  static final String RUN = String.valueOf(ProcessHandle.current().pid());
  static final String NETWORK = "natgate-footprint-" + RUN;
  static final String NODE = "footprint-node";
  /** USER_HZ, the unit of /proc/PID/stat's CPU times: 100 on every Linux architecture Docker runs on. */
  static final long CLOCK_TICKS = 100;
  static final String OPERATOR = "natgate-footprint-operator-" + RUN;
  static final String AGENT = "natgate-footprint-agent-" + RUN;
  /** Where the kubelet mounts a pod's ServiceAccount token, CA and namespace (fabric8 reads them there). */
  static final String SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount";
  /** A name of the API server's certificate (kube-api-test's names the Service kubernetes.default.svc...). */
  static final String API_SERVER_NAME = "kubernetes.default.svc";

  private final ControlPlane cp;
  private final KubernetesClient admin;
  private final HttpClient http = HttpClient.newHttpClient();
  private final int idleSeconds = Integer.getInteger("bench.idle-seconds", 20);
  private final String logs = System.getProperty("bench.logs");
  private int rounds;
  /** The agent network's first three octets ("198.18.219."), a /24 no other run's network holds: see main. */
  private static String subnet;

  FootprintBenchmark(ControlPlane cp) {
    this.cp = cp;
    this.admin = cp.admin();
  }

  public static void main(String[] args) {
    int status = 1;
    // Also when the run is interrupted (Ctrl-C, timeout): System.exit and SIGTERM run shutdown hooks.
    Runtime.getRuntime().addShutdownHook(new Thread(FootprintBenchmark::removeContainersAndNetwork));
    try {
      subnet = createNetwork();
      run();
      status = 0;
    } catch (Throwable e) { // an Error too (NoClassDefFoundError...): exec:java would otherwise wait for ever
      e.printStackTrace();
      System.out.println("bench-footprint failed: " + e);
    } finally {
      System.exit(status);
    }
  }

  /** The agent's network, in the first of 198.18.219-212.0/24 that no other Docker network (another run's) holds. */
  private static String createNetwork() throws IOException {
    for (int octet = 219; ; octet--) {
      String prefix = "198.18." + octet + ".";
      try {
        docker("network", "create", "--subnet", prefix + "0/24", NETWORK);
        return prefix;
      } catch (IOException e) {
        if (octet == 212 || !e.getMessage().contains("overlap")) {
          throw e;
        }
      }
    }
  }

  private static void removeContainersAndNetwork() {
    try {
      docker("rm", "-f", OPERATOR, AGENT);
      docker("network", "rm", NETWORK);
    } catch (IOException e) {
      System.out.println("could not remove " + OPERATOR + ", " + AGENT + " or " + NETWORK + ": " + e.getMessage());
    }
  }

  private static void run() throws Exception {
    List<String[]> images = new ArrayList<>();
    for (String pair : System.getProperty("bench.images").split(",")) {
      images.add(pair.split("="));
    }
    int rounds = Integer.getInteger("bench.rounds", 2);
    try (ControlPlane cp = new ControlPlane()) {
      var bench = new FootprintBenchmark(cp);
      Map<String, List<long[]>> results = new LinkedHashMap<>();
      for (int round = 1; round <= rounds; round++) {
        for (String[] pair : images) {
          System.out.printf("%nround %d of %d: %s + %s, load %s%n", round, rounds, pair[0], pair[1], load());
          results.computeIfAbsent(pair[0] + " + " + pair[1], k -> new ArrayList<>()).add(bench.round(pair[0], pair[1]));
        }
      }
      System.out.printf("%n| images | size operator / agent | operator start → ready | operator RSS | agent start → "
          + "applied | agent RSS | CPU to ready / to applied | classes operator / agent |%n|---|---|---|---|---|---|---|---|%n");
      for (String[] pair : images) {
        List<long[]> r = results.get(pair[0] + " + " + pair[1]);
        System.out.printf("| %s + %s | %s / %s | %s ms | %s MiB | %s ms | %s MiB | %s / %s ms | %s / %s |%n", pair[0],
            pair[1], size(pair[0]), size(pair[1]), column(r, 0), column(r, 1), column(r, 2), column(r, 3), column(r, 4),
            column(r, 5), column(r, 6), column(r, 7));
      }
      System.out.printf("load average at the end: %s%n", load());
    }
  }

  /**
   * Operator start → ready ms, its RSS MiB, agent start → applied ms, its RSS MiB, then the CPU time each JVM had used
   * when ready / applied (ms; all threads): unlike the wall-clock times, it hardly moves with the machine's load.
   */
  long[] round(String operatorImage, String agentImage) throws Exception {
    Path dir = Files.createTempDirectory("natgate-footprint");
    String operator = OPERATOR;
    String agent = AGENT;
    try {
      int port = freePort();
      admin.nodes().resource(new NodeBuilder().withNewMetadata().withName(NODE)
          .addToLabels("node-role.kubernetes.io/egress", "").endMetadata().withNewSpec().endSpec().build()).create();
      String nodeIp = subnet + "10";
      new io.natgate.testing.Cluster(admin).setReady(NODE, nodeIp, true);
      try (InputStream sample = Files.newInputStream(ControlPlane.repo().resolve("config/samples/egressgateway.yaml"))) {
        EgressGateway gw = admin.resources(EgressGateway.class).load(sample).item();
        gw.getSpec().egressIPs = List.of(subnet + "100");
        admin.resource(gw).create();
      }
      String apiPort = String.valueOf(URI.create(admin.getConfiguration().getMasterUrl()).getPort());

      long start = System.nanoTime();
      // On the host network the API server answers on 127.0.0.1, an address its certificate names.
      docker(concat(List.of("run", "-d", "--name", operator, "--network", "host", "--memory", "512m"),
          serviceAccount(dir.resolve("operator"), cp.token(ControlPlane.OPERATOR_NAMESPACE,
              ControlPlane.OPERATOR_SERVICE_ACCOUNT), "127.0.0.1", apiPort),
          List.of("-e", "QUARKUS_HTTP_PORT=" + port,
              "-e", "NATGATE_LEADER_ELECTION_NAMESPACE=" + ControlPlane.OPERATOR_NAMESPACE, operatorImage)));
      await("operator ready", operator, () -> ok("http://127.0.0.1:" + port + "/q/health/ready"));
      long operatorReady = (System.nanoTime() - start) / 1_000_000;
      long operatorCpu = cpuMs(operator);

      start = System.nanoTime();
      // From the agent's network the API server is the host's address there (its gateway), which the certificate
      // does not name: the agent reaches it by a name the certificate has, as a pod reaches the Service's address.
      docker(concat(List.of("run", "-d", "--name", agent, "--network", NETWORK, "--ip", nodeIp, "--memory", "300m",
          "--privileged", "--add-host", API_SERVER_NAME + ":" + subnet + "1"),
          serviceAccount(dir.resolve("agent"), cp.agentToken(NODE), API_SERVER_NAME, apiPort),
          List.of("-e", "NATGATE_AGENT_NODE_NAME=" + NODE, "-e", "NATGATE_AGENT_NODE_IP=" + nodeIp,
              "-e", "NATGATE_HEARTBEAT_NAMESPACE=" + ControlPlane.OPERATOR_NAMESPACE, "-e", "QUARKUS_HTTP_PORT=9741",
              agentImage)));
      // Applied with the egress IP held: an apply before the agent decided to hold it is not the first apply asked for.
      await("agent applied its node's state", agent, () -> admin.resources(EgressNodeState.class).list().getItems()
          .stream().anyMatch(s -> NODE.equals(s.getSpec().nodeName) && s.getStatus() != null
              && s.getMetadata().getGeneration().equals(s.getStatus().appliedGeneration)
              && s.getStatus().held != null && s.getStatus().held.contains(subnet + "100")));
      long agentApplied = (System.nanoTime() - start) / 1_000_000;
      long agentCpu = cpuMs(agent);

      Thread.sleep(idleSeconds * 1000L);
      long[] result = {operatorReady, rssMiB(operator), agentApplied, rssMiB(agent), operatorCpu, agentCpu, 0, 0};
      result[6] = classes(operator); // after the RSS: attaching starts a thread in the JVM
      result[7] = classes(agent);
      System.out.printf("operator ready %d ms (CPU %d ms), RSS %d MiB, %d classes; agent applied %d ms (CPU %d ms), "
          + "RSS %d MiB, %d classes%n", result[0], result[4], result[1], result[6], result[2], result[5], result[3],
          result[7]);
      System.out.printf("  RSS MiB by mapping, operator %s; agent %s%n", rssParts(operator), rssParts(agent));
      // Deleted while the operator runs, so that its finalizer is honoured.
      admin.resources(EgressGateway.class).withName("payments").delete();
      await("gateway deleted", operator, () -> admin.resources(EgressGateway.class).list().getItems().isEmpty());
      return result;
    } finally {
      rounds++;
      if (logs != null) {
        Files.createDirectories(Path.of(logs));
        for (String container : List.of(operator, agent)) {
          try {
            Files.writeString(Path.of(logs, container + "-" + rounds + ".log"), docker("logs", container));
          } catch (IOException e) {
            System.out.println("no log of " + container + ": " + e.getMessage()); // it did not start
          }
        }
      }
      docker("rm", "-f", operator, agent);
      admin.resources(EgressGateway.class).withName("payments").withGracePeriod(0).delete();
      admin.nodes().withName(NODE).delete();
      admin.leases().inNamespace(ControlPlane.OPERATOR_NAMESPACE).delete();
      try (var files = Files.walk(dir)) {
        files.sorted(java.util.Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
      }
    }
  }

  private static Path readableByAll(Path file) throws IOException {
    return Files.setPosixFilePermissions(file, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
  }

  private boolean ok(String url) {
    try {
      return http.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(2)).build(),
          HttpResponse.BodyHandlers.discarding()).statusCode() == 200;
    } catch (IOException e) {
      return false;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    }
  }

  interface Check {
    boolean done() throws Exception;
  }

  /** Waits for {@code check}, failing at once, with the container's last output, when the container has stopped. */
  private static void await(String what, String container, Check check) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(3);
    for (int polls = 0; !check.done(); polls++) {
      if (polls % 50 != 49) { // a docker inspect about once a second: it costs more CPU than the check itself
        Thread.sleep(20);
        continue;
      }
      String state = docker("inspect", "-f", "{{.State.Status}} (exit code {{.State.ExitCode}})", container).trim();
      if (!state.startsWith("running")) {
        throw new IllegalStateException(container + " " + state + " before " + what + "; its last output:\n"
            + docker("logs", "--tail", "30", container));
      }
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("timed out waiting for: " + what);
      }
      Thread.sleep(20);
    }
  }

  /**
   * The docker run options that give a container the credentials a pod of {@code token}'s ServiceAccount has: the
   * token, the API server's CA and the namespace where the kubelet mounts them (readable by the image's user, as the
   * kubelet's default mode 0644 makes them), and the API server's address in KUBERNETES_SERVICE_HOST/PORT.
   */
  private List<String> serviceAccount(Path dir, String token, String host, String port) throws IOException {
    Files.createDirectories(dir);
    readableByAll(Files.writeString(dir.resolve("token"), token));
    readableByAll(Files.copy(Path.of(admin.getConfiguration().getCaCertFile()), dir.resolve("ca.crt")));
    readableByAll(Files.writeString(dir.resolve("namespace"), ControlPlane.OPERATOR_NAMESPACE));
    Files.setPosixFilePermissions(dir, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
    return List.of("-v", dir + ":" + SERVICE_ACCOUNT_MOUNT + ":ro", "-e", "KUBERNETES_SERVICE_HOST=" + host,
        "-e", "KUBERNETES_SERVICE_PORT=" + port);
  }

  @SafeVarargs
  private static String[] concat(List<String>... parts) {
    return java.util.Arrays.stream(parts).flatMap(List::stream).toArray(String[]::new);
  }

  /** The host's process ID of the container's main process (the JVM). */
  private static String pid(String container) throws IOException {
    return docker("inspect", "-f", "{{.State.Pid}}", container).trim();
  }

  /** CPU time (user + system, all threads) of the container's main process so far, from the host's /proc. */
  private static long cpuMs(String container) throws IOException {
    String pid = pid(container);
    String stat = Files.readString(Path.of("/proc", pid, "stat"));
    // After the command name's closing parenthesis: state is field 3, utime and stime fields 14 and 15 (in ticks).
    String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
    return (Long.parseLong(fields[11]) + Long.parseLong(fields[12])) * 1000 / CLOCK_TICKS;
  }

  /** The container's main process (the JVM), read from the host's /proc. */
  private static long rssMiB(String container) throws IOException {
    String pid = pid(container);
    for (String line : Files.readAllLines(Path.of("/proc", pid, "status"))) {
      if (line.startsWith("VmRSS:")) {
        return Long.parseLong(line.replaceAll("[^0-9]", "")) / 1024;
      }
    }
    throw new IllegalStateException("no VmRSS for " + container);
  }

  /**
   * Classes the container's JVM has loaded (every class loader's), as this JDK's jcmd counts them from the host; -1
   * when it cannot attach (another Java major version).
   */
  private static long classes(String container) throws IOException {
    Path jcmd = Path.of(System.getProperty("java.home"), "bin", "jcmd");
    Process p = new ProcessBuilder(jcmd.toString(), pid(container), "VM.classloader_stats").redirectErrorStream(true)
        .start();
    String out = new String(p.getInputStream().readAllBytes());
    for (String line : out.split("\n")) {
      if (line.startsWith("Total = ")) { // Total = <class loaders> <classes> <chunk bytes> <block bytes>
        return Long.parseLong(line.trim().split("\\s+")[3]);
      }
    }
    System.out.println("no class count of " + container + ": " + out.strip());
    return -1;
  }

  /**
   * Where the RSS is, from /proc/PID/smaps: anonymous memory (heap, metaspace, code, stacks, malloc), the class-data
   * archives or AOT cache (*.jsa, *.aot: resident as a whole once mapped, relocated or not), other files (libjvm...).
   */
  private static String rssParts(String container) throws IOException {
    String pid = pid(container);
    Map<String, Long> kib = new LinkedHashMap<>();
    for (String p : List.of("anonymous", "archives", "other files")) {
      kib.put(p, 0L);
    }
    String part = "anonymous";
    for (String line : Files.readAllLines(Path.of("/proc", pid, "smaps"))) {
      String[] f = line.trim().split("\\s+");
      if (line.matches("^[0-9a-f]+-[0-9a-f]+ .*")) {
        String file = f.length > 5 ? f[5] : "";
        part = file.endsWith(".jsa") || file.endsWith(".aot") ? "archives"
            : file.startsWith("/") ? "other files" : "anonymous";
      } else if (f[0].equals("Rss:")) {
        kib.merge(part, Long.parseLong(f[1]), Long::sum);
      }
    }
    StringBuilder out = new StringBuilder();
    kib.forEach((k, v) -> out.append(out.isEmpty() ? "" : ", ").append(k).append(' ').append(v / 1024));
    return out.toString();
  }

  private static String size(String image) throws IOException {
    return String.format("%d MB", Long.parseLong(docker("image", "inspect", "-f", "{{.Size}}", image).trim())
        / 1_000_000);
  }

  private static String column(List<long[]> rows, int i) {
    return rows.stream().map(r -> String.valueOf(r[i])).toList().toString();
  }

  private static String load() throws IOException {
    return Files.readString(Path.of("/proc/loadavg")).split(" ", 4)[0];
  }

  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  private static String docker(String... args) throws IOException {
    List<String> command = new ArrayList<>(List.of("docker"));
    command.addAll(List.of(args));
    Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes());
    try {
      if (!p.waitFor(5, TimeUnit.MINUTES) || (p.exitValue() != 0 && !args[0].equals("rm")
          && !(args[0].equals("network") && args[1].equals("rm")))) {
        throw new IOException(String.join(" ", command) + " failed: " + out);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException(e);
    }
    return out;
  }
}
