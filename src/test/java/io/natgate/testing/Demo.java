package io.natgate.testing;

import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.lab.LabNode;
import io.natgate.lab.LabPod;
import io.natgate.lab.NetworkLab;
import io.natgate.lab.Prober;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * `make demo`: a real control plane, the operator under its own ServiceAccount, three nodes and their pods as
 * network namespaces with a natgate agent each (in this JVM, its kernel commands run in its node's namespace, as
 * the agent ServiceAccount), an external echo server. Applies the sample gateway, shows what the external host
 * sees, then takes the active gateway node off the network and measures the failover.
 */
public final class Demo {
  static final String EGRESS_IP = "198.18.0.100";

  private Demo() {
  }

  public static void main(String[] args) throws Exception {
    String unavailable = NetworkLab.unavailableReason();
    if (unavailable != null) {
      System.err.println("make demo: " + unavailable);
      System.exit(2);
    }
    Path kubeconfig = Files.createTempFile("natgate-demo", ".kubeconfig");
    List<AutoCloseable> running = new ArrayList<>();
    Path connectionLogs = Files.createTempDirectory("natgate-demo-connections");
    try (NetworkLab lab = NetworkLab.withNodes(3).podsPerNode(2); ControlPlane cp = new ControlPlane()) {
      lab.start();
      say("network lab up: node-1, node-2 (egress), node-3 (worker) on 198.18.0.0/24, two pods each, "
          + "external echo server " + lab.externalIP());
      Files.writeString(kubeconfig, cp.kubeConfigYaml());
      say("control plane up (etcd + kube-apiserver, RBAC on); CRDs and config/rbac installed");
      OperatorRunner operator = new OperatorRunner(cp);
      running.add(operator);
      Cluster cluster = new Cluster(cp.admin());
      Map<String, TcpProxy> links = new HashMap<>();
      for (LabNode n : lab.nodes()) {
        cluster.node(n.name(), n.ip(), n.index() < 3 ? Map.of("node-role.kubernetes.io/egress", "") : Map.of());
        TcpProxy link = new TcpProxy("127.0.0.1", URI.create(cp.admin().getConfiguration().getMasterUrl()).getPort());
        links.put(n.name(), link);
        running.add(link);
        running.add(LabAgent.start(cp, lab, n, link, connectionLogs.resolve(n.name() + ".log")));
      }
      cluster.namespace("payments", Map.of("team", "payments"));
      cluster.namespace("shop", Map.of());
      LabPod selected = lab.pod(3, 1);
      LabPod unselected = lab.pod(3, 2);
      cluster.runningPod("payments", "api", "node-3", selected.ip(), Map.of("app", "api"));
      cluster.runningPod("payments", "worker", "node-1", lab.pod(1, 1).ip(), Map.of("app", "worker"));
      cluster.runningPod("shop", "web", "node-3", unselected.ip(), Map.of("app", "web"));
      say("operator and 3 agents running; pods payments/api (node-3), payments/worker (node-1), shop/web (node-3)");

      kubectl(kubeconfig, "apply", "-f", ControlPlane.repo().resolve("config/samples/egressgateway.yaml").toString());
      waitFor(cp, g -> "True".equals(condition(g, "Ready")) && "True".equals(condition(g, "Programmed")));
      kubectl(kubeconfig, "get", "egw", "-o", "wide");
      say("the external host sees payments/api (node-3, steered through the tunnel) as "
          + lab.seenSource(selected).orElse("nothing") + ", payments/worker (node-1) as "
          + lab.seenSource(lab.pod(1, 1)).orElse("nothing") + ", shop/web (not selected) as "
          + lab.seenSource(unselected).orElse("nothing"));

      String holder = cp.admin().resources(EgressGateway.class).withName("payments").get()
          .getStatus().assignments.get(0).node;
      Thread.sleep(500); // the log's writer flushes when it has caught up
      say("connection log of " + holder + " (" + connectionLogs.resolve(holder + ".log") + "; end records follow "
          + "when the kernel forgets each connection, after TIME_WAIT):");
      Path records = connectionLogs.resolve(holder + ".log");
      if (Files.exists(records)) {
        Files.readAllLines(records).stream().limit(4).forEach(System.out::println);
      }
      LabNode gone = lab.nodes().stream().filter(n -> n.name().equals(holder)).findFirst().orElseThrow();
      say(holder + " loses the network (node link and API server cut); payments/api keeps connecting every 20 ms");
      Prober prober = lab.startProbing(selected, Duration.ofMillis(20));
      Thread.sleep(300);
      Instant cut = Instant.now();
      lab.cutLink(gone);
      links.get(holder).cut();
      waitFor(cp, g -> !g.getStatus().assignments.isEmpty() && !holder.equals(g.getStatus().assignments.get(0).node));
      Thread.sleep(1500);
      List<Prober.Probe> probes = prober.stop();
      var back = Prober.recovery(probes, cut, EGRESS_IP);
      long leaked = Prober.seenWithOtherSource(probes, EGRESS_IP);
      say("failover: first echo with " + EGRESS_IP + " again "
          + back.map(d -> d.toMillis() + " ms").orElse("without a gap")
          + " after the cut; connections seen with another source: " + leaked + " of " + probes.size());
      kubectl(kubeconfig, "get", "egw", "-o", "wide");
      kubectl(kubeconfig, "get", "events", "-n", "default", "--field-selector", "involvedObject.kind=EgressGateway");

      if (Boolean.getBoolean("natgate.demo.keep")) {
        lab.restoreLink(gone);
        links.get(holder).restore();
        say("kept up. Try: " + System.getProperty("natgate.kubectl", "kubectl") + " --kubeconfig " + kubeconfig
            + " get egw,egressnodestates,nodes -o wide\n    and: ip netns exec " + lab.node(1).ns()
            + " iptables-save | grep NATGATE\n    Press Enter to delete the gateway and tear everything down.");
        System.in.read();
      }
      say("deleting the gateway: labels, node states and every rule, set, address and route go");
      kubectl(kubeconfig, "delete", "egw", "payments");
      lab.restoreLink(gone); // back on the network: its agent can clean up too
      links.get(holder).restore();
      cp.admin().resources(EgressNodeState.class).informOnCondition(l -> l.isEmpty()).get(30, TimeUnit.SECONDS);
      Thread.sleep(1000);
      System.out.println("iptables-save | grep -c NATGATE on node-3: " + lab.exec(lab.node(3).ns(), "sh", "-c",
          "iptables-save | grep -c NATGATE || true").strip());
      say("tearing down");
    } finally {
      java.util.Collections.reverse(running);
      for (AutoCloseable c : running) {
        c.close();
      }
      Files.deleteIfExists(kubeconfig);
    }
    System.exit(0); // exec:java would otherwise wait for the client's lingering threads
  }

  private static String condition(EgressGateway g, String type) {
    return g.getStatus() == null ? null : g.getStatus().conditions.stream().filter(c -> type.equals(c.getType()))
        .map(c -> c.getStatus()).findFirst().orElse(null);
  }

  private static void waitFor(ControlPlane cp, Predicate<EgressGateway> done) {
    cp.admin().resources(EgressGateway.class).withName("payments")
        .waitUntilCondition(g -> g != null && g.getStatus() != null && done.test(g), 60, TimeUnit.SECONDS);
  }

  private static void kubectl(Path kubeconfig, String... args) throws IOException, InterruptedException {
    String kubectl = System.getProperty("natgate.kubectl", "kubectl");
    var command = new ArrayList<>(List.of(kubectl, "--kubeconfig", kubeconfig.toString()));
    command.addAll(List.of(args));
    System.out.println("\n$ kubectl " + String.join(" ", args));
    new ProcessBuilder(command).inheritIO().start().waitFor();
  }

  private static void say(String s) {
    System.out.println("\n==> " + s);
  }
}
