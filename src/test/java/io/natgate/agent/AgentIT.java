package io.natgate.agent;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.fabric8.kubernetes.api.model.ObjectMetaBuilder;
import io.fabric8.kubernetes.api.model.ServiceAccountBuilder;
import io.fabric8.kubernetes.api.model.rbac.ClusterRoleBindingBuilder;
import io.fabric8.kubernetes.api.model.rbac.ClusterRoleBuilder;
import io.fabric8.kubernetes.api.model.rbac.RoleBindingBuilder;
import io.fabric8.kubernetes.client.ConfigBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import io.natgate.api.v1alpha1.FailurePolicy;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.testing.ControlPlane;
import io.natgate.testing.ControlPlaneExtension;
import io.natgate.testing.FakeKernel;
import io.natgate.testing.LabAgent;
import io.natgate.testing.TcpProxy;
import java.net.URI;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The agent against the real API server with a recording kernel (no root): what it does while the API server refuses
 * it. Its ServiceAccount starts with nothing but its heartbeat; the test grants the rest step by step, as an operator
 * fixing a broken install would, and the agent must pick each up by itself.
 */
@ExtendWith(ControlPlaneExtension.class)
class AgentIT {
  static final String NS = ControlPlane.OPERATOR_NAMESPACE;
  static final String ACCOUNT = "natgate-agent-it";
  static final String NODE = "agent-it-node";
  static final String EGRESS_IP = "198.18.0.130";

  private final ControlPlane controlPlane;

  AgentIT(ControlPlane controlPlane) {
    this.controlPlane = controlPlane;
  }

  @Test
  void watchRefusedIsReportedAndRetriedAndAFailedStatusReportIsRetriedUntilItSticks() throws Exception {
    KubernetesClient admin = controlPlane.admin();
    createAccountWithHeartbeatOnly();
    EgressNodeState created = admin.resource(state(NODE, EGRESS_IP)).create();

    var kernel = new FakeKernel("eth0");
    KubernetesClient client = controlPlane.clientFor(NS, ACCOUNT);
    try (Agent agent = new Agent(client, io.natgate.agent.Heartbeat.client(new ConfigBuilder(client.getConfiguration())
        .build(), LabAgent.FENCE_AFTER), Agent.Settings.defaults(NODE, null, "eth0")
        .withRepairInterval(Duration.ofSeconds(1)), kernel, new SimpleMeterRegistry()).start()) {

      // No list/watch on EgressNodeStates: said so (liveness), nothing applied, and the agent keeps trying.
      await().atMost(Duration.ofSeconds(15)).until(() -> agent.watchError() != null);
      assertThat(agent.watchError()).contains("cannot watch EgressNodeStates").contains("403");
      assertThat(agent.ready()).isFalse();
      assertThat(kernel.addresses()).isEmpty();

      // Watch granted, status not: applied, the PATCH refused.
      grant("natgate-agent-it-read", "egressnodestates", List.of("get", "list", "watch"));
      await().atMost(Duration.ofSeconds(40)).until(() -> kernel.addresses().contains(EGRESS_IP));
      assertThat(agent.watchError()).isNull();
      Thread.sleep(2000);
      assertThat(admin.resource(created).get().getStatus()).as("status written without permission").isNull();

      // Status granted: the report is retried without any change to the state.
      grant("natgate-agent-it-status", "egressnodestates/status", List.of("get", "patch"));
      await().atMost(Duration.ofSeconds(40)).untilAsserted(() -> {
        var s = admin.resource(created).get().getStatus();
        assertThat(s).isNotNull();
        assertThat(s.appliedGeneration).isEqualTo(created.getMetadata().getGeneration());
      });

      // Someone overwrites the status: the next repair puts the applied one back.
      admin.resources(EgressNodeState.class).withName(created.getMetadata().getName()).subresource("status")
          .patch(io.fabric8.kubernetes.client.dsl.base.PatchContext.of(
              io.fabric8.kubernetes.client.dsl.base.PatchType.JSON_MERGE),
              "{\"status\":{\"appliedGeneration\":null,\"error\":\"forged\"}}");
      await().atMost(Duration.ofSeconds(15)).untilAsserted(() -> {
        var s = admin.resource(created).get().getStatus();
        assertThat(s.error).isNull();
        assertThat(s.appliedGeneration).isEqualTo(created.getMetadata().getGeneration());
      });
    } finally {
      deleteAccountAndState(NODE, created);
    }
  }

  /**
   * The agent lists and watches its node's states while its first Lease renewal is pending (it used to wait for the
   * renewal first, a few hundred ms of every start), and applies nothing before the renewal succeeded. Here its
   * heartbeat cannot reach the API server at first, and its watch is refused: said at once, retried, then watching;
   * nothing applied until the heartbeat gets through.
   */
  @Test
  void theWatchStartsWhileTheFirstRenewalIsPendingAndNothingIsAppliedBeforeIt() throws Exception {
    KubernetesClient admin = controlPlane.admin();
    String node = "agent-it-early";
    createAccountWithHeartbeatOnly();
    EgressNodeState created = admin.resource(state(node, "198.18.0.132")).create();
    var kernel = new FakeKernel("eth0");
    KubernetesClient client = controlPlane.clientFor(NS, ACCOUNT);
    URI api = URI.create(client.getConfiguration().getMasterUrl());
    try (var heartbeatPath = new TcpProxy(api.getHost(), api.getPort())) {
      heartbeatPath.cut();
      try (Agent agent = new Agent(client, Heartbeat.client(new ConfigBuilder(client.getConfiguration())
          .withMasterUrl("https://127.0.0.1:" + heartbeatPath.port()).build(), LabAgent.FENCE_AFTER),
          Agent.Settings.defaults(node, null, "eth0"), kernel, new SimpleMeterRegistry()).start()) {
        await().atMost(Duration.ofSeconds(15)).until(() -> agent.watchError() != null);
        assertThat(agent.watchError()).contains("403");

        grant("natgate-agent-it-read", "egressnodestates", List.of("get", "list", "watch"));
        grant("natgate-agent-it-status", "egressnodestates/status", List.of("get", "patch"));
        await().atMost(Duration.ofSeconds(40)).until(() -> agent.watchError() == null);
        Thread.sleep(500); // the initial list's events reach the apply path
        assertThat(kernel.commands()).as("applied before the first renewal")
            .noneMatch(c -> c.contains("restore") || c.contains("-batch"));
        assertThat(agent.ready()).isFalse();

        heartbeatPath.restore();
        await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> {
          var st = admin.resource(created).get().getStatus();
          assertThat(st).isNotNull();
          assertThat(st.appliedGeneration).isEqualTo(created.getMetadata().getGeneration());
          assertThat(st.held).containsExactly("198.18.0.132");
        });
      }
    } finally {
      deleteAccountAndState(node, created);
    }
  }

  /**
   * A cold agent's first renewal is slow (hundreds of ms under load), and the next one started a renewal interval after
   * it ended: together past the fence deadline, a release right after the start. The second follows the first at once.
   */
  @Test
  void theFirstRenewalIsFollowedByAnotherAtOnce() throws Exception {
    String node = "agent-it-renewals";
    var renewals = new AtomicInteger();
    KubernetesClient client = controlPlane.agentClient(node);
    try (var heartbeat = new Heartbeat(Heartbeat.client(client.getConfiguration(), Duration.ofSeconds(5)), NS, node,
        Duration.ofSeconds(30), Duration.ofSeconds(60), Duration.ofSeconds(40), () -> { }, () -> { },
        renewals::incrementAndGet).start()) {
      assertThat(heartbeat.awaitFirstRenewal(Duration.ofSeconds(10))).isTrue();
      await().atMost(Duration.ofSeconds(10)).until(() -> renewals.get() >= 2);
    } finally {
      controlPlane.admin().leases().inNamespace(NS).withName(Heartbeat.leaseName(node)).delete();
    }
  }

  /**
   * A renewal that ends past the fence deadline says nothing about now (the Lease it wrote is already that old): the
   * heartbeat fences at once instead of counting the Lease as live until its watchdog's next tick, and regains with
   * the next renewal in time. Here the first connection is held 1.5 s, the deadline is 0.4 s and the watchdog ticks
   * every 7.5 s.
   */
  @Test
  void aRenewalEndingPastTheFenceDeadlineFencesAtOnce() throws Exception {
    String node = "agent-it-slow-renewal";
    var lostCount = new AtomicInteger();
    var regainedCount = new AtomicInteger();
    KubernetesClient client = controlPlane.agentClient(node);
    URI api = URI.create(client.getConfiguration().getMasterUrl());
    try (var path = new TcpProxy(api.getHost(), api.getPort())) {
      path.delayNewConnections(Duration.ofMillis(1500));
      var config = new ConfigBuilder(client.getConfiguration()).withMasterUrl("https://127.0.0.1:" + path.port()).build();
      try (var heartbeat = new Heartbeat(Heartbeat.client(config, Duration.ofSeconds(5)), NS, node,
          Duration.ofSeconds(30), Duration.ofSeconds(60), Duration.ofMillis(400), lostCount::incrementAndGet,
          regainedCount::incrementAndGet, () -> { }).start()) {
        assertThat(heartbeat.awaitFirstRenewal(Duration.ofSeconds(10))).isTrue();
        path.delayNewConnections(Duration.ZERO);
        await().atMost(Duration.ofSeconds(3)).until(() -> lostCount.get() == 1);
        // The renewal that follows the first at once reuses the connection: in time, so the Lease is live again.
        await().atMost(Duration.ofSeconds(5)).until(() -> regainedCount.get() == 1 && !heartbeat.lost());
      }
    } finally {
      controlPlane.admin().leases().inNamespace(NS).withName(Heartbeat.leaseName(node)).delete();
    }
  }

  /** ServiceAccount {@link #ACCOUNT} with the agent's heartbeat Role and nothing else. */
  private void createAccountWithHeartbeatOnly() {
    KubernetesClient admin = controlPlane.admin();
    admin.serviceAccounts().inNamespace(NS).resource(new ServiceAccountBuilder().withNewMetadata().withName(ACCOUNT)
        .endMetadata().build()).serverSideApply();
    admin.rbac().roleBindings().inNamespace(NS).resource(new RoleBindingBuilder().withNewMetadata().withName(ACCOUNT)
        .endMetadata().withNewRoleRef("rbac.authorization.k8s.io", "Role", "natgate-agent-heartbeat")
        .addNewSubject().withKind("ServiceAccount").withName(ACCOUNT).withNamespace(NS).endSubject().build())
        .serverSideApply();
  }

  private void deleteAccountAndState(String node, EgressNodeState state) {
    KubernetesClient admin = controlPlane.admin();
    admin.resource(state).delete();
    admin.leases().inNamespace(NS).withName(Heartbeat.leaseName(node)).delete();
    admin.rbac().clusterRoleBindings().withName("natgate-agent-it-read").delete();
    admin.rbac().clusterRoleBindings().withName("natgate-agent-it-status").delete();
    admin.rbac().clusterRoles().withName("natgate-agent-it-read").delete();
    admin.rbac().clusterRoles().withName("natgate-agent-it-status").delete();
    admin.rbac().roleBindings().inNamespace(NS).withName(ACCOUNT).delete();
    admin.serviceAccounts().inNamespace(NS).withName(ACCOUNT).delete();
  }

  /**
   * The first holding decision, which PeerLiveness takes as it starts, is carried out like any later one: it used to
   * reach the agent before the agent had assigned its PeerLiveness, failed there (a NullPointerException, logged as
   * "deciding which egress IPs to hold failed") and was lost.
   */
  @Test
  void theFirstHoldingDecisionIsCarriedOutWithoutError() throws Exception {
    KubernetesClient admin = controlPlane.admin();
    String node = "agent-it-start";
    EgressNodeState created = admin.resource(state(node, "198.18.0.131")).create();
    List<LogRecord> errors = new CopyOnWriteArrayList<>();
    Handler handler = new Handler() {
      @Override
      public void publish(LogRecord record) {
        if (record.getLevel().intValue() >= Level.SEVERE.intValue()) {
          errors.add(record);
        }
      }

      @Override
      public void flush() {
      }

      @Override
      public void close() {
      }
    };
    java.util.logging.Logger peers = java.util.logging.Logger.getLogger("io.natgate.peers");
    java.util.logging.Logger agents = java.util.logging.Logger.getLogger("io.natgate.agent");
    peers.addHandler(handler);
    agents.addHandler(handler);
    var kernel = new FakeKernel("eth0");
    KubernetesClient client = controlPlane.agentClient(node);
    try (Agent agent = new Agent(client, Heartbeat.client(client.getConfiguration(), LabAgent.FENCE_AFTER),
        Agent.Settings.defaults(node, null, "eth0"), kernel, new SimpleMeterRegistry()).start()) {
      await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> {
        var s = admin.resource(created).get().getStatus();
        assertThat(s).isNotNull();
        assertThat(s.appliedGeneration).isEqualTo(created.getMetadata().getGeneration());
        assertThat(s.held).containsExactly("198.18.0.131");
      });
      assertThat(kernel.addresses()).contains("198.18.0.131");
      assertThat(errors).extracting(r -> r.getMessage() + " " + r.getThrown()).isEmpty();
    } finally {
      peers.removeHandler(handler);
      agents.removeHandler(handler);
      admin.resource(created).delete();
      admin.leases().inNamespace(NS).withName(Heartbeat.leaseName(node)).delete();
    }
  }

  /** {@code node}'s part in gateway payments: it alone, holding {@code egressIP} (the Lease rule: no peer group). */
  private static EgressNodeState state(String node, String egressIP) {
    var gw = new NodeGatewayState();
    gw.failurePolicy = FailurePolicy.Drop;
    gw.cidrs = List.of("0.0.0.0/0");
    gw.snat.add(new NodeGatewayState.Snat(egressIP, true, List.of("198.19.1.11")));
    var state = new EgressNodeState();
    state.setMetadata(new ObjectMetaBuilder().withName(EgressNodeState.nameFor("payments", node)).build());
    state.setSpec(new EgressNodeStateSpec(node, "payments", gw));
    return state;
  }

  private void grant(String name, String resource, List<String> verbs) {
    KubernetesClient admin = controlPlane.admin();
    admin.rbac().clusterRoles().resource(new ClusterRoleBuilder().withNewMetadata().withName(name).endMetadata()
        .addNewRule().withApiGroups("natgate.io").withResources(resource).withVerbs(verbs).endRule().build())
        .serverSideApply();
    admin.rbac().clusterRoleBindings().resource(new ClusterRoleBindingBuilder().withNewMetadata().withName(name)
        .endMetadata().withNewRoleRef("rbac.authorization.k8s.io", "ClusterRole", name).addNewSubject()
        .withKind("ServiceAccount").withName(ACCOUNT).withNamespace(NS).endSubject().build()).serverSideApply();
  }
}
