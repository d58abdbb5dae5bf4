package io.natgate.testing;

import io.natgate.api.v1alpha1.EgressGateway;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * `make demo`: a real control plane, the operator under its own ServiceAccount, three simulated nodes and two pods,
 * the sample gateway, then a gateway node going NotReady. The data path (real NAT) arrives with the agent.
 */
public final class Demo {
  private Demo() {
  }

  public static void main(String[] args) throws Exception {
    Path kubeconfig = Files.createTempFile("natgate-demo", ".kubeconfig");
    try (ControlPlane cp = new ControlPlane()) {
      Files.writeString(kubeconfig, cp.kubeConfigYaml());
      say("control plane up (etcd + kube-apiserver, RBAC on); CRDs and config/rbac installed");
      try (OperatorRunner operator = new OperatorRunner(cp)) {
        Cluster cluster = new Cluster(cp.admin());
        cluster.node("egress-1", "198.18.0.11", Map.of("node-role.kubernetes.io/egress", ""));
        cluster.node("egress-2", "198.18.0.12", Map.of("node-role.kubernetes.io/egress", ""));
        cluster.node("worker-1", "198.18.0.13", Map.of());
        cluster.namespace("payments", Map.of("team", "payments"));
        cluster.runningPod("payments", "api", "worker-1", "198.19.3.2", Map.of("app", "api"));
        say("3 nodes (egress-1, egress-2, worker-1), pod payments/api on worker-1");
        kubectl(kubeconfig, "apply", "-f", ControlPlane.repo().resolve("config/samples/egressgateway.yaml").toString());
        waitFor(cp, g -> "True".equals(ready(g)));
        kubectl(kubeconfig, "get", "egw", "-o", "wide");
        kubectl(kubeconfig, "get", "nodes", "-L", "natgate.io/gateway");
        kubectl(kubeconfig, "get", "egressnodestates", "-o",
            "custom-columns=NODE:.metadata.name,GATEWAYS:.spec.gateways");

        String holder = cp.admin().resources(EgressGateway.class).withName("payments").get()
            .getStatus().assignments.get(0).node;
        say(holder + " goes NotReady...");
        Instant cut = Instant.now();
        cluster.setReady(holder, holder.equals("egress-1") ? "198.18.0.11" : "198.18.0.12", false);
        waitFor(cp, g -> !g.getStatus().assignments.isEmpty() && !holder.equals(g.getStatus().assignments.get(0).node));
        say("198.18.0.100 moved in " + Duration.between(cut, Instant.now()).toMillis() + " ms (control plane only)");
        kubectl(kubeconfig, "get", "egw", "-o", "wide");
        kubectl(kubeconfig, "get", "events", "-n", "default", "--field-selector", "involvedObject.kind=EgressGateway");
        say("tearing down");
      }
    } finally {
      Files.deleteIfExists(kubeconfig);
    }
    System.exit(0); // exec:java would otherwise wait for the client's lingering threads
  }

  private static String ready(EgressGateway g) {
    return g.getStatus() == null ? null : g.getStatus().conditions.stream().filter(c -> "Ready".equals(c.getType()))
        .map(c -> c.getStatus()).findFirst().orElse(null);
  }

  private static void waitFor(ControlPlane cp, java.util.function.Predicate<EgressGateway> done) {
    cp.admin().resources(EgressGateway.class).withName("payments")
        .waitUntilCondition(g -> g != null && g.getStatus() != null && done.test(g), 60, TimeUnit.SECONDS);
  }

  private static void kubectl(Path kubeconfig, String... args) throws IOException, InterruptedException {
    String kubectl = System.getProperty("natgate.kubectl", "kubectl");
    var command = new java.util.ArrayList<>(java.util.List.of(kubectl, "--kubeconfig", kubeconfig.toString()));
    command.addAll(java.util.List.of(args));
    System.out.println("\n$ kubectl " + String.join(" ", args));
    new ProcessBuilder(command).inheritIO().start().waitFor();
  }

  private static void say(String s) {
    System.out.println("\n==> " + s);
  }
}
