package io.natgate.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.fabric8.kubernetes.api.model.Condition;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.dataplane.IptablesBackend;
import io.natgate.lab.KernelState;
import io.natgate.lab.LabNode;
import io.natgate.lab.LabPod;
import io.natgate.lab.NetworkLab;
import io.natgate.lab.Prober;
import io.natgate.plan.NodeLabels;
import io.natgate.testing.ControlPlane;
import io.natgate.testing.ControlPlaneExtension;
import io.natgate.testing.LabAgent;
import java.io.InputStream;
import java.nio.file.Files;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer.OrderAnnotation;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Operator and agents as processes, the real API server, the network lab: the sample gateway end to end, a new
 * pod, a killed agent, a cut link, a killed operator mid-failover, deletion. {@code failurePolicy: Drop} throughout:
 * the external host must never see a selected pod's packet with another source. Needs root.
 */
@ExtendWith(ControlPlaneExtension.class)
@TestMethodOrder(OrderAnnotation.class)
class EndToEndE2E {
  static final String EGRESS_IP = "198.18.0.100";
  static final Duration SOON = Duration.ofSeconds(30);

  @RegisterExtension
  static final NetworkLab lab = NetworkLab.withNodes(3).podsPerNode(2);

  static EndToEnd e2e;
  static KubernetesClient admin;
  static Map<String, KernelState> baseline;
  /** The nodes' kernels with the agents running and no gateway: the base each agent keeps while it runs. */
  static Map<String, KernelState> withBase;
  /** Selected pods, one per node; payments/late (pod 2 of node 2) joins in scenario 2; shop/web is not selected. */
  static List<LabPod> selected;

  @BeforeAll
  static void start(ControlPlane cp) throws Exception {
    if (!lab.started()) {
      return; // each test is reported skipped with the lab's reason
    }
    selected = List.of(lab.pod(1, 1), lab.pod(2, 1), lab.pod(3, 1));
    baseline = lab.kernelStates();
    admin = cp.admin();
    e2e = new EndToEnd(lab, cp).start();
    // With no gateway yet each agent puts in the base (Renderer.base).
    lab.nodes().forEach(n -> LabAgent.awaitBase(lab, n, IptablesBackend.NFT));
    withBase = lab.kernelStates();
    e2e.cluster().namespace("payments", Map.of("team", "payments"));
    e2e.cluster().namespace("shop", Map.of());
    for (LabPod p : selected) {
      e2e.cluster().runningPod("payments", p.name(), lab.node(p.node()).name(), p.ip(), Map.of());
    }
    e2e.cluster().runningPod("shop", "web", lab.node(3).name(), lab.pod(3, 2).ip(), Map.of());
  }

  @AfterAll
  static void stop() throws Exception {
    if (e2e != null) {
      e2e.closeDeleting("payments", "payments", "shop");
    }
  }

  @Test
  @Order(1)
  void theSampleGatewayBecomesReadyAndProgrammedAndEveryNodesSelectedPodLeavesWithTheEgressIP() throws Exception {
    try (InputStream sample = Files.newInputStream(ControlPlane.repo().resolve("config/samples/egressgateway.yaml"))) {
      admin.load(sample).create();
    }
    await().atMost(Duration.ofSeconds(90)).untilAsserted(() -> {
      EgressGateway g = gateway();
      assertThat(condition(g, "Ready")).isEqualTo("True");
      assertThat(condition(g, "Programmed")).isEqualTo("True");
    });
    assertThat(gateway().getStatus().sourceIPs).containsExactly(EGRESS_IP);
    for (LabPod p : selected) {
      await().atMost(SOON).until(() -> lab.seenSource(p).equals(Optional.of(EGRESS_IP)));
    }
    assertThat(lab.seenSource(lab.pod(3, 2))).contains(lab.node(3).ip());
  }

  @Test
  @Order(2)
  void aNewSelectedPodIsSnatedAsSoonAsItsIPIsInTheAPI() {
    LabPod late = lab.pod(2, 2);
    Prober prober = lab.startProbing(late, Duration.ofMillis(10));
    Instant created = Instant.now();
    e2e.cluster().runningPod("payments", "late", lab.node(2).name(), late.ip(), Map.of());
    await().atMost(SOON).until(() -> lab.seenSource(late).equals(Optional.of(EGRESS_IP)));
    Instant answered = Prober.firstAnswer(prober.stop(), created, EGRESS_IP).orElseThrow();
    System.out.printf("pod IP in the API -> first connection with the egress IP: %d ms%n",
        Duration.between(created, answered).toMillis());
  }

  @Test
  @Order(3)
  void aKilledAgentsIPMovesAndTheExternalHostSeesItAgain() throws Exception {
    LabNode holder = holder();
    lab.resetArrivals();
    Prober prober = lab.startProbing(lab.pod(3, 1), Duration.ofMillis(20));
    Thread.sleep(200);
    Instant killed = Instant.now();
    e2e.killAgent(holder);
    try {
      awaitFailover(holder, prober, killed, "agent SIGKILLed");
      await().atMost(SOON).untilAsserted(() -> assertThat(admin.v1().events().inNamespace("default").list()
          .getItems()).anySatisfy(e -> assertThat(e.getReason() + " " + e.getMessage())
              .contains("EgressIPMoved", holder.name())));
    } finally {
      // The DaemonSet restarts it: it finds its state without the IP and removes the address the killed one left.
      e2e.startAgent(holder);
    }
    awaitBack(holder);
    assertThat(lab.seenSource(lab.pod(3, 1))).contains(EGRESS_IP);
  }

  @Test
  @Order(4)
  void aGatewayCutOffTheNetworkFencesItselfSoThatTwoNodesNeverHoldTheIP() throws Exception {
    LabNode holder = holder();
    lab.resetArrivals();
    AtomicInteger mostHolders = new AtomicInteger();
    AtomicBoolean watching = new AtomicBoolean(true);
    Thread watcher = new Thread(() -> {
      while (watching.get()) {
        mostHolders.accumulateAndGet((int) lab.nodes().stream().filter(EndToEndE2E::holds).count(), Math::max);
      }
    });
    watcher.start();
    Prober prober = lab.startProbing(lab.pod(3, 1), Duration.ofMillis(20));
    Thread.sleep(200);
    Instant cut = Instant.now();
    lab.cutLink(holder);
    try {
      awaitFailover(holder, prober, cut, "gateway link cut");
    } finally {
      watching.set(false);
      watcher.join();
      lab.restoreLink(holder);
    }
    assertThat(mostHolders.get()).as("node namespaces holding the egress IP at once").isEqualTo(1);
    awaitBack(holder); // back on the network: a candidate again, and it stays released
  }

  @Test
  @Order(5)
  void theOperatorKilledInTheMiddleOfAFailoverConvergesWhenRestarted() throws Exception {
    LabNode holder = holder();
    lab.resetArrivals();
    e2e.killAgent(holder);
    Thread.sleep(300);
    e2e.killOperator();
    try {
      e2e.startOperator(); // it waits for the old leader Lease to expire, then replans from what it observes
      await().atMost(Duration.ofSeconds(90)).ignoreExceptions().until(() -> !holder().equals(holder));
      await().atMost(SOON).until(() -> lab.seenSource(lab.pod(3, 1)).equals(Optional.of(EGRESS_IP)));
    } finally {
      e2e.startAgent(holder);
    }
    awaitBack(holder);
    // Exactly one node state SNATs to the IP, and every state was applied.
    await().atMost(SOON).untilAsserted(() -> {
      var states = admin.resources(EgressNodeState.class).list().getItems();
      assertThat(states).filteredOn(s -> "payments".equals(s.getSpec().gateway) && !s.getSpec().snat.isEmpty())
          .hasSize(1);
      assertThat(condition(gateway(), "Programmed")).isEqualTo("True");
    });
    assertThat(lab.arrivals(lab.pod(3, 1)).keySet()).isSubsetOf(EGRESS_IP);
  }

  @Test
  @Order(6)
  void deletingTheGatewayRemovesLabelsStatesAndEveryKernelObjectButTheBase() {
    admin.resources(EgressGateway.class).withName("payments").delete();
    await().atMost(SOON).until(() -> admin.resources(EgressGateway.class).withName("payments").get() == null);
    await().atMost(SOON).until(() -> admin.resources(EgressNodeState.class).list().getItems().isEmpty());
    assertThat(lab.nodes()).allSatisfy(n -> assertThat(NodeLabels.currentGateway(admin.nodes().withName(n.name())
        .get())).isNull());
    await().atMost(SOON).untilAsserted(() -> assertThat(lab.kernelStates()).isEqualTo(withBase));
    assertThat(withBase).isNotEqualTo(baseline);
  }

  @Test
  @Order(7)
  void uninstallingTheAgentsLeavesNothing() throws Exception {
    e2e.uninstallAgents();
    assertThat(lab.kernelStates()).isEqualTo(baseline);
  }

  /**
   * The IP moves away from {@code holder} and the probing pod's echo comes back with it: prints the outage since
   * {@code from}, and checks that no packet of the pod reached the external host with another source.
   */
  static void awaitFailover(LabNode holder, Prober prober, Instant from, String what) {
    await().atMost(SOON).ignoreExceptions().until(() -> !holder().equals(holder));
    await().atMost(SOON).until(() -> lab.seenSource(lab.pod(3, 1)).equals(Optional.of(EGRESS_IP)));
    var probes = prober.stop();
    System.out.printf("%s -> first echo with the egress IP again: %s%n", what,
        Prober.recovery(probes, from, EGRESS_IP).map(d -> d.toMillis() + " ms").orElse("no gap"));
    assertThat(Prober.seenWithOtherSource(probes, EGRESS_IP)).isZero();
    assertNoLeak(lab.pod(3, 1));
  }

  /** Every packet of the probing pod reached the external host with the egress IP; on failure, who forwarded it. */
  static void assertNoLeak(LabPod pod) {
    try {
      assertThat(lab.arrivals(pod)).containsOnlyKeys(EGRESS_IP);
    } catch (AssertionError e) {
      for (LabNode n : lab.nodes()) {
        System.out.println("== " + n.name() + " conntrack from " + pod.ip() + ":\n" + lab.exec(n.ns(), "sh", "-c",
            "conntrack -L -s " + pod.ip() + " 2>/dev/null; iptables-save -c | grep -E 'NATGATE|CNI-MASQ'; true"));
      }
      throw e;
    }
  }

  /** A restarted agent is up (a candidate again) and has removed the address its killed predecessor left. */
  static void awaitBack(LabNode n) {
    await().atMost(Duration.ofSeconds(90)).until(() -> e2e.agentAlive(n) && !holds(n));
    await().atMost(SOON).until(() -> "True".equals(condition(gateway(), "Programmed")));
  }

  /** Whether the node holds the egress IP; false when the command fails (the watcher thread must keep going). */
  static boolean holds(LabNode n) {
    try {
      return lab.holds(n, EGRESS_IP);
    } catch (RuntimeException e) {
      return false;
    }
  }


  static EgressGateway gateway() {
    return admin.resources(EgressGateway.class).withName("payments").get();
  }

  static LabNode holder() {
    String node = gateway().getStatus().assignments.get(0).node;
    return lab.nodes().stream().filter(n -> n.name().equals(node)).findFirst().orElseThrow();
  }

  static String condition(EgressGateway g, String type) {
    return g.getStatus() == null ? null : g.getStatus().conditions.stream().filter(c -> type.equals(c.getType()))
        .map(Condition::getStatus).findFirst().orElse(null);
  }
}
