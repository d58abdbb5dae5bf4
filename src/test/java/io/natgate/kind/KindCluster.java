package io.natgate.kind;

import io.natgate.testing.ControlPlane;
import io.natgate.testing.Kubectl;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;

/**
 * A Kind cluster of one control plane and two workers, from the node images and kind CLI that
 * src/tools/kindnode/build.sh builds (make kind-test passes them as system properties), on a Docker network of
 * its own inside the reserved test range. The second worker boots from the iptables-legacy node image, the other
 * nodes from the iptables-nft one: one cluster runs every scenario across nodes of both backends. Every step belongs to a {@link Stage}: a failure names it, with the
 * nodes' logs attached, and each stage's time is printed. {@link #close()} removes the nodes and the network even
 * after a failure.
 */
final class KindCluster implements AutoCloseable {
  /**
   * The node networks (Docker; the first free of 198.18.224.0/24 to 198.18.231.0/24, so that runs side by side
   * get one each), the pods' and the services' ranges: all in 198.18.128.0/17, clear of the netns lab's.
   */
  static final String NODE_SUBNETS = "198.18.%d.0/24";
  static final int FIRST_NODE_SUBNET = 224;
  static final int NODE_SUBNET_COUNT = 8;
  static final String POD_SUBNET = "198.18.160.0/20";
  static final String SERVICE_SUBNET = "198.18.144.0/24";
  static final Path FLANNEL = Path.of("src/tools/kindnode/flannel.yaml");

  enum Stage {
    IMAGE_BUILD("image build"), NODE_BOOT("node boot"), CNI("CNI"), INSTALL("install"), SCENARIO("scenario");

    final String title;

    Stage(String title) {
      this.title = title;
    }
  }

  final String name = "natgate-" + UUID.randomUUID().toString().substring(0, 6);
  final String network = name;
  private final String kind = System.getProperty("natgate.kind.cli");
  private final String nodeImage = System.getProperty("natgate.kind.node-image");
  private final String legacyNodeImage = System.getProperty("natgate.kind.legacy-node-image");
  private final String etcdTag = System.getProperty("natgate.kind.etcd-tag");
  private final Path work;
  private Kubectl kubectl;
  private String kubeconfig;
  private int subnet = -1;
  private final List<Path> overlays = new ArrayList<>();

  /** Why the cluster cannot be made here, or null. */
  static String whyUnavailable() {
    if (System.getProperty("natgate.kind.cli", "").isEmpty() || System.getProperty("natgate.kind.node-image", "")
        .isEmpty() || System.getProperty("natgate.kind.legacy-node-image", "").isEmpty()) {
      return "no kind node images given: make kind-test builds them (root, Docker) and passes "
          + "natgate.kind.cli/node-image/legacy-node-image";
    }
    return io.natgate.testing.Images.whyUnavailable(System.getProperty("natgate.kind.node-image"),
        System.getProperty("natgate.kind.legacy-node-image"));
  }

  KindCluster() throws IOException {
    work = Files.createTempDirectory("natgate-kind");
  }

  /** Runs one stage: prints its time; a failure names the stage and carries the cluster's logs. */
  <T> T stage(Stage stage, Callable<T> body) {
    long start = System.nanoTime();
    try {
      T result = body.call();
      System.out.printf("kind: stage %s took %d s%n", stage.title, Duration.ofNanos(System.nanoTime() - start)
          .toSeconds());
      return result;
    } catch (Throwable e) {
      throw new AssertionError("Kind stage '" + stage.title + "' failed after "
          + Duration.ofNanos(System.nanoTime() - start).toSeconds() + " s: " + e.getMessage() + "\n" + logs(), e);
    }
  }

  void stage(Stage stage, Step body) {
    stage(stage, () -> {
      body.run();
      return null;
    });
  }

  interface Step {
    void run() throws Exception;
  }

  /** Node containers up, kubeadm init and join done (kind create cluster), CNI not yet there. */
  void boot() throws Exception {
    for (int i = FIRST_NODE_SUBNET; subnet < 0 && i < FIRST_NODE_SUBNET + NODE_SUBNET_COUNT; i++) {
      try {
        run(Duration.ofMinutes(1), "docker", "network", "create", "--subnet", NODE_SUBNETS.formatted(i), network);
        subnet = i;
      } catch (IllegalStateException taken) {
        System.out.println("kind: " + NODE_SUBNETS.formatted(i) + " taken: " + taken.getMessage().strip());
      }
    }
    if (subnet < 0) {
      throw new IllegalStateException("no free node network among " + NODE_SUBNET_COUNT + " from "
          + NODE_SUBNETS.formatted(FIRST_NODE_SUBNET));
    }
    Path config = work.resolve("kind.yaml");
    Files.writeString(config, """
        kind: Cluster
        apiVersion: kind.x-k8s.io/v1alpha4
        networking:
          ipFamily: ipv4
          disableDefaultCNI: true
          podSubnet: %s
          serviceSubnet: %s
        nodes:
          - role: control-plane
            image: %s
          - role: worker
            image: %s
          - role: worker
            image: %s
        kubeadmConfigPatches:
          - |
            kind: ClusterConfiguration
            etcd:
              local:
                imageTag: %s
        """.formatted(POD_SUBNET, SERVICE_SUBNET, nodeImage, nodeImage, legacyNodeImage, etcdTag));
    Path kubeconfigFile = work.resolve("kubeconfig");
    run(Duration.ofMinutes(10), Map.of("KIND_EXPERIMENTAL_DOCKER_NETWORK", network), kind, "create", "cluster",
        "--name", name, "--config", config.toString(), "--kubeconfig",
        kubeconfigFile.toString(), "--retain");
    kubeconfig = Files.readString(kubeconfigFile);
    kubectl = new Kubectl(kubeconfig);
  }

  /** flannel as the CNI, then every node Ready and CoreDNS available. */
  void installCni() throws Exception {
    Path manifest = work.resolve("flannel.yaml");
    Files.writeString(manifest, Files.readString(ControlPlane.repo().resolve(FLANNEL)).replace("POD_SUBNET",
        POD_SUBNET));
    kubectl("apply", "-f", manifest.toString());
    kubectl("wait", "--for=condition=Ready", "nodes", "--all", "--timeout=180s");
    kubectl("-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=180s");
  }

  /**
   * config/default with these images instead of the manifests' (kustomize's {@code images}, as {@code kustomize edit
   * set image} writes it), in a directory under target/ (kustomize takes no absolute path to a base).
   */
  Path withImages(String operator, String agent) throws IOException {
    return withImages("config/default", operator, agent);
  }

  /** The same for another kustomization of config/ ({@code config/agent}, say). */
  Path withImages(String base, String operator, String agent) throws IOException {
    Path dir = Files.createDirectories(ControlPlane.repo().resolve("target").resolve(name + "-"
        + base.replace('/', '-')));
    var text = new StringBuilder("resources:\n  - ../../" + base + "\nimages:\n");
    Map.of(io.natgate.testing.Images.of("config/manager/manager.yaml"), operator,
        io.natgate.testing.Images.of("config/agent/daemonset.yaml"), agent).forEach((from, to) -> {
          int colon = to.lastIndexOf(':') > to.lastIndexOf('/') ? to.lastIndexOf(':') : to.length();
          text.append("  - name: ").append(from.substring(0, from.lastIndexOf(':'))).append("\n    newName: ")
              .append(to, 0, colon).append("\n    newTag: \"").append(colon < to.length() ? to.substring(colon + 1)
                  : "latest").append("\"\n");
        });
    Files.writeString(dir.resolve("kustomization.yaml"), text);
    overlays.add(dir);
    return dir;
  }

  /** Copies images from the local Docker engine into every node's containerd (one archive, the nodes at once). */
  void load(String... images) throws Exception {
    List<String> argv = new ArrayList<>(List.of(kind, "load", "docker-image", "--name", name));
    argv.addAll(List.of(images));
    run(Duration.ofMinutes(10), argv.toArray(String[]::new));
  }

  /** The worker on iptables-legacy (kind names the second worker so); the other nodes are on iptables-nft. */
  String legacyWorker() {
    return name + "-worker2";
  }

  List<String> nodes() throws Exception {
    return List.of(kubectl("get", "nodes", "-o", "jsonpath={.items[*].metadata.name}").trim().split(" "));
  }

  /** kubectl against the cluster; fails with its output unless it exits 0. */
  String kubectl(String... args) throws Exception {
    Kubectl.Result r = kubectl.run(args);
    if (r.exitCode() != 0) {
      throw new IllegalStateException("kubectl " + String.join(" ", args) + ": " + r.summary());
    }
    return r.out();
  }

  /** An address of the node network, e.g. 100 for the egress IP (Docker gives the nodes the first ones). */
  String nodeNetworkAddress(int host) {
    return "198.18.%d.%d".formatted(subnet, host);
  }

  String kubeconfig() {
    return kubeconfig;
  }

  /** A command in a node container (iptables-save, ip addr...). */
  String exec(String node, String... command) throws Exception {
    List<String> argv = new ArrayList<>(List.of("docker", "exec", node));
    argv.addAll(List.of(command));
    return run(Duration.ofMinutes(1), argv.toArray(String[]::new));
  }

  /** What a failure report needs: the nodes' own logs, pods and events. */
  String logs() {
    StringBuilder out = new StringBuilder("---- logs of Kind cluster " + name + " ----\n");
    for (String[] command : List.of(
        new String[] {"docker", "ps", "-a", "--filter", "label=io.x-k8s.kind.cluster=" + name},
        new String[] {kind, "export", "logs", "--name", name, work.resolve("logs").toString()})) {
      out.append(tryRun(command));
    }
    for (String node : tryRun("docker", "ps", "-a", "--format", "{{.Names}}", "--filter",
        "label=io.x-k8s.kind.cluster=" + name).lines().filter(l -> l.startsWith(name)).toList()) {
      out.append("-- ").append(node).append(": docker logs (tail)\n").append(tryRun("docker", "logs", "--tail", "40",
          node));
      out.append("-- ").append(node).append(": journal (kubelet, containerd; tail)\n").append(tryRun("docker",
          "exec", node, "journalctl", "--no-pager", "-n", "60", "-u", "kubelet", "-u", "containerd",
          "-u", "natgate-images"));
    }
    if (kubectl != null) {
      for (String[] args : List.of(new String[] {"get", "nodes", "-o", "wide"},
          new String[] {"get", "pods", "-A", "-o", "wide"}, new String[] {"get", "events", "-A"})) {
        try {
          out.append("-- kubectl ").append(String.join(" ", args)).append('\n').append(kubectl.run(args).summary());
        } catch (Exception e) {
          out.append(e).append('\n');
        }
      }
    }
    return out.append("(kind export logs: ").append(work.resolve("logs")).append(")\n").toString();
  }

  @Override
  public void close() throws Exception {
    for (Path overlay : overlays) {
      Files.deleteIfExists(overlay.resolve("kustomization.yaml"));
      Files.deleteIfExists(overlay);
    }
    if (Boolean.getBoolean("natgate.kind.keep")) {
      Files.writeString(work.resolve("kubeconfig"), kubeconfig == null ? "" : kubeconfig);
      System.out.printf("kind: cluster %s kept (natgate.kind.keep): kubeconfig %s; remove with %s delete cluster "
          + "--name %s && docker network rm %s%n", name, work.resolve("kubeconfig"), kind, name, network);
      return;
    }
    tryRun(kind, "delete", "cluster", "--name", name);
    if (subnet >= 0) {
      tryRun("docker", "network", "rm", network);
    }
    if (kubectl != null) {
      kubectl.close();
    }
  }

  /** Runs a command for its output or its failure's message: for clean-up and logs, which must go on. */
  static String tryRun(String... command) {
    try {
      return run(Duration.ofMinutes(2), command);
    } catch (Exception e) {
      return e.getMessage() + "\n";
    }
  }

  static String run(Duration timeout, String... command) throws IOException, InterruptedException {
    return run(timeout, Map.of(), command);
  }

  /** Runs a command, its output in a file (no pipe to fill); fails with the output unless it exits 0. */
  static String run(Duration timeout, Map<String, String> env, String... command)
      throws IOException, InterruptedException {
    Path out = Files.createTempFile("natgate-kind", ".out");
    try {
      ProcessBuilder pb = new ProcessBuilder(command).directory(ControlPlane.repo().toFile())
          .redirectErrorStream(true).redirectOutput(out.toFile());
      pb.environment().putAll(env);
      Process p = pb.start();
      if (!p.waitFor(timeout.toSeconds(), TimeUnit.SECONDS)) {
        p.destroyForcibly().waitFor();
        throw new IllegalStateException(String.join(" ", command) + ": no end in " + timeout.toSeconds() + " s\n"
            + Files.readString(out, StandardCharsets.UTF_8));
      }
      String output = Files.readString(out, StandardCharsets.UTF_8);
      if (p.exitValue() != 0) {
        throw new IllegalStateException(String.join(" ", command) + ": exit " + p.exitValue() + "\n" + output);
      }
      return output;
    } finally {
      Files.deleteIfExists(out);
    }
  }
}
