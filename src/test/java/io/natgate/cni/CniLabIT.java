package io.natgate.cni;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.fabric8.kubernetes.api.model.LabelSelectorBuilder;
import io.fabric8.kubernetes.api.model.ObjectMetaBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.PodStatusBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.natgate.Defaults;
import io.natgate.agent.Agent;
import io.natgate.agent.Heartbeat;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.EgressGatewaySpec;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.FailurePolicy;
import io.natgate.api.v1alpha1.Sources;
import io.natgate.lab.CniChain;
import io.natgate.lab.KernelState;
import io.natgate.lab.LabNode;
import io.natgate.lab.LabPod;
import io.natgate.lab.Prober;
import io.natgate.lab.NetworkLab;
import io.natgate.testing.Cluster;
import io.natgate.testing.ControlPlane;
import io.natgate.testing.ControlPlaneExtension;
import io.natgate.testing.LabAgent;
import io.natgate.testing.OperatorRunner;
import io.natgate.testing.TcpProxy;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Pods started the way a kubelet's runtime starts them: libcni (cnitool) runs the node's conflist, Debian's ptp and
 * host-local give the pod its address, then natgate-cni asks the node's agent, which puts the pod into its sets
 * before answering; the pod's first action is a connection to the external host. The operator runs too and
 * confirms each pod later. Node 1 holds the egress IP (its pods are SNATed there), node 2 steers its pods to it.
 */
@ExtendWith(ControlPlaneExtension.class)
class CniLabIT {
  static final String EGRESS_IP = "198.18.0.130";
  static final String NAMESPACE = "cni-payments";
  static final String GATEWAY = "cni-lab";
  /** A pod labelled {@code OPT_OUT=off} is not selected. */
  static final String OPT_OUT = "natgate.io/lab-egress";
  /** -Dcni.pods=N scales the run down on a loaded machine. */
  static final int PODS = Integer.getInteger("cni.pods", 50);

  @RegisterExtension
  static final NetworkLab lab = NetworkLab.withNodes(2).podsPerNode(0);

  private final ControlPlane controlPlane;

  CniLabIT(ControlPlane controlPlane) {
    this.controlPlane = controlPlane;
  }

  private static String unavailable;

  @BeforeAll
  static void cniChain() {
    unavailable = CniChain.unavailableReason();
  }

  /** Each test reports itself skipped with the reason (a class skipped in @BeforeAll would report no test at all). */
  @BeforeEach
  void cniChainAvailable() {
    Assumptions.assumeTrue(unavailable == null, unavailable);
  }

  /** Director pods started while the gateway node cannot hear their agent (the old behaviour, side by side). */
  static final int UNHEARD_PODS = Math.max(2, PODS / 5);

  /**
   * @param first       the source the external host saw for the pod's first connection, and how long it took (ms)
   * @param synRetrans  SYNs the pod's kernel sent again for that connection (0: its first SYN was answered)
   */
  record Started(String name, String sandbox, LabNode node, String ip, CompletableFuture<Optional<String>> first,
      CompletableFuture<Long> firstMillis, CompletableFuture<Long> synRetrans) {
  }

  @Test
  void selectedPodsLeaveWithTheEgressIPFromTheStartAndNeverAsTheNode(@TempDir Path dir) throws Exception {
    KubernetesClient admin = controlPlane.admin();
    LabNode gatewayNode = lab.node(1);
    LabNode worker = lab.node(2);
    Map<String, KernelState> baseline = nodeStates();
    Cluster cluster = new Cluster(admin);
    URI api = URI.create(admin.getConfiguration().getMasterUrl());
    List<Agent> agents = new ArrayList<>();
    List<Started> pods = new ArrayList<>();
    try (TcpProxy link1 = new TcpProxy(api.getHost(), api.getPort());
        TcpProxy link2 = new TcpProxy(api.getHost(), api.getPort());
        OperatorRunner operator = new OperatorRunner(controlPlane)) {
      cluster.node(gatewayNode.name(), gatewayNode.ip(), Map.of("natgate.io/cni-lab", "egress"));
      cluster.node(worker.name(), worker.ip(), Map.of());
      cluster.namespace(NAMESPACE, Map.of("team", NAMESPACE));
      Path socket1 = dir.resolve("agent-1/cni.sock");
      Path socket2 = dir.resolve("agent-2/cni.sock");
      var gatewayMetrics = new SimpleMeterRegistry();
      var workerMetrics = new SimpleMeterRegistry();
      agents.add(LabAgent.startWithCni(controlPlane, lab, gatewayNode, link1, socket1, gatewayMetrics));
      agents.add(LabAgent.startWithCni(controlPlane, lab, worker, link2, socket2, workerMetrics));
      admin.resource(gateway()).create();
      await().atMost(Duration.ofSeconds(30)).until(() -> lab.holds(gatewayNode, EGRESS_IP));
      Map<LabNode, CniChain> chains = Map.of(gatewayNode, new CniChain(lab, gatewayNode, dir, socket1),
          worker, new CniChain(lab, worker, dir, socket2));
      // Both agents talk to each other (once they have the peer key, which the operator creates).
      await().atMost(Duration.ofSeconds(30)).until(() -> List.of(gatewayMetrics, workerMetrics).stream()
          .allMatch(m -> m.find("natgate_agent_cni_sources_refused_total").counter() != null));
      lab.resetArrivals();

      for (int i = 0; i < PODS; i++) {
        pods.add(start(admin, chains, i % 2 == 0 ? gatewayNode : worker, "p" + i, "s" + i));
      }
      // The director's ADDs waited for the gateway node: each acknowledged, or counted as not.
      await().atMost(Duration.ofSeconds(30)).until(() -> confirms(workerMetrics, "acked")
          + confirms(workerMetrics, "timeout") == PODS / 2);
      long acked = confirms(workerMetrics, "acked");

      // Side by side: the gateway node cannot hear the director's agent (its port dropped): the ADD waits out its
      // bound and returns anyway (counted), the pod is steered and its first SYNs are dropped at the gateway until
      // the operator lists it: late, never as the node.
      List<Started> unheard = new ArrayList<>();
      String drop = "INPUT -p udp --dport " + Defaults.CNI_SOURCE_PORT + " -j DROP";
      lab.exec(gatewayNode.ns(), ("iptables -I " + drop).split(" "));
      try {
        for (int i = 0; i < UNHEARD_PODS; i++) {
          unheard.add(start(admin, chains, worker, "u" + i, "su" + i));
        }
        for (Started p : unheard) {
          p.synRetrans().join();
        }
      } finally {
        lab.exec(gatewayNode.ns(), ("iptables -D " + drop).split(" "));
      }
      assertThat(confirms(workerMetrics, "timeout")).as("ADDs not acknowledged")
          .isEqualTo(PODS / 2 - acked + UNHEARD_PODS);
      pods.addAll(unheard);

      for (Started p : pods) {
        p.synRetrans().join(); // before any other connection of the pod's
      }
      for (Started p : pods) {
        await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(50))
            .until(() -> lab.seenSource(p.sandbox(), NetworkLab.ECHO_PORT).equals(Optional.of(EGRESS_IP)));
      }
      Map<String, Long> arrivals = lab.arrivals(NetworkLab.ECHO_PORT);
      Map<String, Long> firstAnswered = new LinkedHashMap<>();
      pods.forEach(p -> firstAnswered.merge(p.node().name() + " " + p.first().join().orElse("unanswered"), 1L,
          Long::sum));
      System.out.printf("%d pods: packets at the external host by source %s; first connections %s%n", PODS, arrivals,
          firstAnswered);
      Map<String, List<Started>> groups = new LinkedHashMap<>();
      lab.nodes().forEach(n -> groups.put(n.name(), pods.stream().filter(p -> p.node() == n && !unheard.contains(p))
          .toList()));
      groups.put(worker.name() + ", gateway not hearing it", unheard);
      groups.forEach((group, started) -> {
        List<Long> ms = started.stream().filter(p -> p.first().join().isPresent()).map(p -> p.firstMillis().join())
            .sorted().toList();
        if (!ms.isEmpty()) {
          System.out.printf("%s: CNI ADD returned -> first connection answered, n=%d p50=%d ms p95=%d ms max=%d ms%n",
              group, ms.size(), ms.get((ms.size() - 1) / 2), ms.get((int) Math.ceil(0.95 * ms.size()) - 1),
              ms.get(ms.size() - 1));
        }
      });
      List<Started> told = pods.stream().filter(p -> p.node() == worker && !unheard.contains(p)).toList();
      long firstSynAnswered = told.stream().filter(p -> p.synRetrans().join() == 0).count();
      long unheardFirstSyn = unheard.stream().filter(p -> p.synRetrans().join() == 0).count();
      System.out.printf("director pods whose first SYN was answered (no SYN retransmitted): gateway told at ADD %d of %d "
          + "(%d ADDs acknowledged), gateway not hearing the director %d of %d%n", firstSynAnswered, told.size(), acked,
          unheardFirstSyn, unheard.size());
      assertThat(arrivals.keySet()).as("sources the external host saw").containsOnly(EGRESS_IP);
      // Every ADD the gateway node acknowledged had the pod in its sets: that pod's first SYN was answered.
      assertThat(told.size() - firstSynAnswered).as("director pods that sent a SYN again")
          .isLessThanOrEqualTo(told.size() - acked);
      // On the node holding the egress IP, the very first connection already leaves with it.
      assertThat(pods.stream().filter(p -> p.node() == gatewayNode).map(p -> p.first().join()))
          .allMatch(seen -> seen.equals(Optional.of(EGRESS_IP)));

      // The worker's agent restarts between a pod's ADD and the kubelet's status write: the pod stays steered (the
      // gateway SNATs it as told at ADD, or drops it until the operator lists it if it was not), never leaves as the
      // node.
      createPod(admin, "restarted", worker);
      String restartedSandbox = lab.newNamespace("restarted");
      CniChain.Outcome early = chains.get(worker).add(restartedSandbox, NAMESPACE, "restarted");
      assertThat(early.exit()).as(early.err()).isZero();
      agents.remove(1).close();
      agents.add(LabAgent.startWithCni(controlPlane, lab, worker, link2, socket2));
      await().atMost(Duration.ofSeconds(30)).until(agents.get(1)::ready);
      assertThat(lab.seenSource(restartedSandbox, NetworkLab.ECHO_PORT)).isIn(Optional.empty(), Optional.of(EGRESS_IP));
      runningWithIP(admin, "restarted", early.podIP());
      await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(50))
          .until(() -> lab.seenSource(restartedSandbox, NetworkLab.ECHO_PORT).equals(Optional.of(EGRESS_IP)));
      pods.add(new Started("restarted", restartedSandbox, worker, early.podIP(),
          CompletableFuture.completedFuture(Optional.empty()), CompletableFuture.completedFuture(0L),
          CompletableFuture.completedFuture(0L)));

      // The worker's agent stops: its pods keep the egress IP (the kernel state stays), a new pod cannot start.
      agents.remove(1).close();
      Started steered = pods.get(1);
      assertThat(lab.seenSource(steered.sandbox(), NetworkLab.ECHO_PORT)).contains(EGRESS_IP);
      createPod(admin, "late", worker);
      String lateSandbox = lab.newNamespace("late");
      CniChain.Outcome refused = chains.get(worker).add(lateSandbox, NAMESPACE, "late");
      assertThat(refused.exit()).isNotZero();
      assertThat(refused.out() + refused.err()).contains("natgate agent unreachable");
      assertThat(chains.get(worker).del(lateSandbox, NAMESPACE, "late").exit()).isZero(); // the runtime's clean-up
      admin.pods().inNamespace(NAMESPACE).withName("late").withGracePeriod(0).delete();
      assertThat(lab.arrivals(NetworkLab.ECHO_PORT).keySet()).containsOnly(EGRESS_IP);
      agents.add(LabAgent.startWithCni(controlPlane, lab, worker, link2, socket2));
      await().atMost(Duration.ofSeconds(30)).until(agents.get(1)::ready);

      // Labels change on running pods: unselected, they leave as their node; selected again, with the egress IP. Each
      // change is applied at the pod's first connection with its new source; from then on, once selected again, every
      // new connection has it (probes every 10 ms, counted where they start).
      lab.resetArrivals();
      for (Started p : List.of(pods.get(0), pods.get(1))) {
        for (boolean selected : List.of(false, true)) {
          String expected = selected ? EGRESS_IP : p.node().ip();
          Prober prober = lab.startProbing(new LabPod(p.name(), p.sandbox(), p.ip(), p.node().index(), 0,
              NetworkLab.ECHO_PORT, ""), Duration.ofMillis(10));
          Instant changed = Instant.now();
          cluster.labelPod(NAMESPACE, p.name(), OPT_OUT, selected ? null : "off");
          await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(10))
              .until(() -> lab.seenSource(p.sandbox(), NetworkLab.ECHO_PORT).equals(Optional.of(expected)));
          Thread.sleep(300);
          List<Prober.Probe> probes = prober.stop();
          Instant applied = Prober.firstAnswer(probes, changed, expected).orElseThrow();
          String old = selected ? p.node().ip() : EGRESS_IP;
          System.out.printf("%s on %s %s: %d ms to the first connection seen as %s, %d connections seen as %s "
              + "meanwhile%n", p.name(), p.node().name(), selected ? "selected again" : "unselected",
              Duration.between(changed, applied).toMillis(), expected,
              probes.stream().filter(x -> x.at().isBefore(applied) && x.source().equals(Optional.of(old))).count(),
              old);
          List<String> after = probes.stream().filter(x -> !x.at().isBefore(applied) && x.source().isPresent())
              .map(x -> x.source().get()).toList();
          if (selected) {
            // Selected again, under a Drop gateway: once it shows, no new connection may leave as the node.
            assertThat(after).as("connections of %s started once selected again, by source", p.name())
                .containsOnly(EGRESS_IP);
          } else {
            // Unselected: never anything but its node's address or the egress IP. (The bench once saw one more
            // connection with the egress IP after the node's address had shown; printed, cause not found yet.)
            assertThat(after).as("connections of %s started once unselected, by source", p.name())
                .isSubsetOf(p.node().ip(), EGRESS_IP);
            System.out.printf("%s unselected: %d of %d later connections still seen with the egress IP%n", p.name(),
                after.stream().filter(EGRESS_IP::equals).count(), after.size());
          }
        }
      }
      assertThat(lab.arrivals(NetworkLab.ECHO_PORT).keySet()).as("sources while labels changed")
          .isSubsetOf(EGRESS_IP, gatewayNode.ip(), worker.ip());

      // DEL and the pods deleted: their addresses leave every set of natgate's and host-local's reservations.
      for (Started p : pods) {
        CniChain.Outcome deleted = chains.get(p.node()).del(p.sandbox(), NAMESPACE, p.name());
        assertThat(deleted.exit()).as("DEL of %s: %s", p.name(), deleted.err()).isZero();
        admin.pods().inNamespace(NAMESPACE).withName(p.name()).withGracePeriod(0).delete();
      }
      await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> {
        for (LabNode n : lab.nodes()) {
          String sets = lab.exec(n.ns(), "ipset", "save");
          assertThat(pods).noneMatch(p -> sets.contains(" " + p.ip() + "\n"));
        }
      });
      assertThat(chains.get(gatewayNode).reserved()).isEmpty();
      assertThat(chains.get(worker).reserved()).isEmpty();
      assertThat(operator.failures()).isZero();

      // Uninstalled while the gateway still exists: nothing of natgate is left on the nodes.
      agents.forEach(Agent::uninstall);
      assertThat(nodeStates()).isEqualTo(baseline);
    } finally {
      agents.forEach(Agent::close);
      admin.resources(EgressGateway.class).withName(GATEWAY).delete();
      // No garbage collector runs beside this API server: the gateway's node states would outlive it.
      admin.resources(EgressNodeState.class).delete();
      admin.namespaces().withName(NAMESPACE).delete();
      for (LabNode n : lab.nodes()) {
        admin.nodes().withName(n.name()).delete();
        admin.leases().inNamespace(ControlPlane.OPERATOR_NAMESPACE).withName(Heartbeat.leaseName(n.name())).delete();
      }
    }
  }

  /**
   * Starts a pod as the runtime does (ADD), then its first connection, while the kubelet writes its IP into the API
   * (the operator plans from there).
   */
  private static Started start(KubernetesClient admin, Map<LabNode, CniChain> chains, LabNode node, String name,
      String sandboxName) {
    createPod(admin, name, node);
    String sandbox = lab.newNamespace(sandboxName);
    CniChain.Outcome added = chains.get(node).add(sandbox, NAMESPACE, name);
    assertThat(added.exit()).as("ADD of %s: %s %s", name, added.out(), added.err()).isZero();
    long start = System.nanoTime();
    var first = CompletableFuture.supplyAsync(() -> lab.seenSource(sandbox, NetworkLab.ECHO_PORT));
    var took = first.thenApply(seen -> (System.nanoTime() - start) / 1_000_000);
    runningWithIP(admin, name, added.podIP());
    return new Started(name, sandbox, node, added.podIP(), first, took, first.thenApply(seen -> synRetrans(sandbox)));
  }

  /** TCPSynRetrans of the namespace's kernel (the pod's own: a sandbox is a network namespace). */
  static long synRetrans(String ns) {
    List<String> lines = lab.exec(ns, "cat", "/proc/net/netstat").lines().filter(l -> l.startsWith("TcpExt:")).toList();
    List<String> names = List.of(lines.get(0).split(" "));
    return Long.parseLong(lines.get(1).split(" ")[names.indexOf("TCPSynRetrans")]);
  }

  private static long confirms(SimpleMeterRegistry metrics, String outcome) {
    var c = metrics.find("natgate_agent_cni_gateway_confirms_total").tag("outcome", outcome).counter();
    return c == null ? 0 : (long) c.count();
  }

  private static Map<String, KernelState> nodeStates() {
    Map<String, KernelState> states = new LinkedHashMap<>();
    lab.nodes().forEach(n -> states.put(n.ns(), lab.kernelState(n.ns())));
    return states;
  }

  private static EgressGateway gateway() {
    var g = new EgressGateway();
    g.setMetadata(new ObjectMetaBuilder().withName(GATEWAY).build());
    var spec = new EgressGatewaySpec();
    spec.nodeSelector = new LabelSelectorBuilder().withMatchLabels(Map.of("natgate.io/cni-lab", "egress")).build();
    spec.egressIPs = List.of(EGRESS_IP);
    spec.sources = new Sources(new LabelSelectorBuilder().withMatchLabels(Map.of("team", NAMESPACE)).build(),
        new LabelSelectorBuilder().addNewMatchExpression().withKey(OPT_OUT).withOperator("NotIn").withValues("off")
            .endMatchExpression().build());
    spec.destinations.excludedCidrs = List.of(NetworkLab.POD_CIDR);
    spec.failurePolicy = FailurePolicy.Drop;
    g.setSpec(spec);
    return g;
  }

  /** A pod bound to the node, before its sandbox exists: no IP yet (the kubelet runs CNI ADD next). */
  private static void createPod(KubernetesClient admin, String name, LabNode node) {
    admin.pods().inNamespace(NAMESPACE).resource(new PodBuilder().withNewMetadata().withName(name)
        .withNamespace(NAMESPACE).withLabels(Map.of("app", "api")).endMetadata().withNewSpec()
        .withNodeName(node.name()).addNewContainer().withName("app").withImage("example.invalid/app:1").endContainer()
        .endSpec().build()).create();
  }

  /** What the kubelet writes once the sandbox is up. */
  private static void runningWithIP(KubernetesClient admin, String name, String ip) {
    Pod pod = admin.pods().inNamespace(NAMESPACE).withName(name).get();
    pod.setStatus(new PodStatusBuilder().withPhase("Running").withPodIP(ip).addNewPodIP(ip).build());
    admin.pods().inNamespace(NAMESPACE).resource(pod).updateStatus();
  }
}
