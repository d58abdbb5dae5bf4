package io.natgate.reconcile;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.fabric8.kubernetes.api.model.Condition;
import io.fabric8.kubernetes.api.model.Event;
import io.fabric8.kubernetes.api.model.LabelSelectorBuilder;
import io.fabric8.kubernetes.api.model.ObjectMetaBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.fabric8.kubernetes.client.dsl.base.PatchContext;
import io.fabric8.kubernetes.client.dsl.base.PatchType;
import io.natgate.api.v1alpha1.AllowEntry;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.PortRange;
import io.natgate.api.v1alpha1.ResolvedName;
import io.natgate.api.v1alpha1.EgressGatewaySpec;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateStatus;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.api.v1alpha1.Sources;
import io.natgate.plan.NodeLabels;
import io.natgate.testing.Cluster;
import io.natgate.testing.ControlPlane;
import io.natgate.testing.ControlPlaneExtension;
import io.natgate.testing.OperatorRunner;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.UnaryOperator;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The operator against a real kube-apiserver, authenticated as its own ServiceAccount under config/rbac. Every test
 * uses its own nodes, namespace and gateways (named after the test) and removes them afterwards.
 */
@ExtendWith(ControlPlaneExtension.class)
class EgressGatewayIT {
  private static final Duration TIMEOUT = Duration.ofSeconds(30);
  private static final AtomicInteger SUBNET = new AtomicInteger(10);

  private final ControlPlane controlPlane;
  private final KubernetesClient admin;
  private final Cluster cluster;
  private OperatorRunner operator;
  private String t;
  private int subnet;
  private final List<String> nodes = new ArrayList<>();
  /** Set by a test whose reconciles fail on purpose. */
  private boolean failuresExpected;

  EgressGatewayIT(ControlPlane controlPlane) {
    this.controlPlane = controlPlane;
    this.admin = controlPlane.admin();
    this.cluster = new Cluster(admin);
  }

  @BeforeEach
  void start(TestInfo info) {
    t = info.getTestMethod().orElseThrow().getName().toLowerCase().replaceAll("[^a-z0-9]", "");
    subnet = SUBNET.getAndIncrement();
    operator = new OperatorRunner(controlPlane);
  }

  @AfterEach
  void cleanUp() {
    if (operator == null) {
      return;
    }
    admin.resources(EgressGateway.class).list().getItems().forEach(g -> admin.resource(g).delete());
    await().atMost(TIMEOUT).until(() -> admin.resources(EgressGateway.class).list().getItems().isEmpty());
    if (!failuresExpected) {
      assertThat(operator.failures()).as("failed reconciliations").isZero();
    }
    operator.close();
    nodes.forEach(cluster::removeNode);
    admin.namespaces().withName(t).delete();
  }

  @Test
  void happyPathReachesReadyWithSourceIPsAndNodeStates() {
    node("egress-a", true, "198.18.0.11");
    node("egress-b", true, "198.18.0.12");
    node("worker", false, "198.18.0.13");
    cluster.namespace(t, Map.of("team", t));
    cluster.runningPod(t, "on-worker", nodeName("worker"), podIP(1), Map.of());
    cluster.runningPod(t, "on-egress", nodeName("egress-a"), podIP(2), Map.of());

    create(gateway("gw", List.of("198.18.0.100")));

    EgressGateway gw = awaitCondition("gw", "Ready", "True", "Ready");
    assertThat(gw.getStatus().sourceIPs).containsExactly("198.18.0.100");
    assertThat(gw.getStatus().assignments).hasSize(1);
    String holder = gw.getStatus().assignments.get(0).node;
    assertThat(holder).isIn(nodeName("egress-a"), nodeName("egress-b"));
    assertThat(gw.getStatus().selectedPods).isEqualTo(2);
    assertThat(gw.getStatus().observedGeneration).isEqualTo(gw.getMetadata().getGeneration());
    assertThat(gw.getStatus().nodes).extracting(n -> n.name).containsExactly(nodeName("egress-a"), nodeName("egress-b"));
    assertThat(gw.getMetadata().getFinalizers()).isNotEmpty();
    assertThat(label("egress-a")).isEqualTo(name("gw"));
    assertThat(label("egress-b")).isEqualTo(name("gw"));
    assertThat(label("worker")).isNull();

    NodeGatewayState gateway = entry(holder, "gw");
    assertThat(gateway.snat).singleElement().satisfies(s -> {
      assertThat(s.egressIP).isEqualTo("198.18.0.100");
      assertThat(s.holdAddress).isTrue();
      assertThat(s.sources).containsExactlyInAnyOrder(podIP(1), podIP(2));
    });
    assertThat(gateway.connectionLog.pods).as("the connection log's names, through the operator's pod cache")
        .containsOnly(Map.entry(podIP(1), t + "/on-worker"), Map.entry(podIP(2), t + "/on-egress"));
    NodeGatewayState director = entry(nodeName("worker"), "gw");
    assertThat(director.steer).singleElement().satisfies(s -> {
      assertThat(s.egressIP).isEqualTo("198.18.0.100");
      assertThat(s.gatewayNode).isEqualTo(holder);
      assertThat(s.sources).containsExactly(podIP(1));
    });
    assertThat(condition(gw, "Programmed").getReason()).isEqualTo("NotProgrammed");

    // The agents report the generation they applied (as the agent's ServiceAccount will): Programmed follows.
    for (String node : Set.of(holder, nodeName("worker"), otherEgress(holder))) {
      reportApplied(node, "gw");
    }
    awaitCondition("gw", "Programmed", "True", "Programmed");
    assertThat(events("gw")).extracting(Event::getReason).contains("EgressIPAssigned");
  }

  /** An allow list reaches every node state of the gateway; what its names resolve to reaches its status. */
  @Test
  void allowListAndItsNamesCounts() {
    node("egress-a", true, "198.18.0.11");
    node("egress-b", true, "198.18.0.12");
    node("worker", false, "198.18.0.13");
    cluster.namespace(t, Map.of("team", t));
    cluster.runningPod(t, "on-worker", nodeName("worker"), podIP(1), Map.of());
    EgressGateway g = gateway("gw", List.of("198.18.0.100"));
    var allow = List.of(AllowEntry.cidr("203.0.113.0/25", PortRange.tcp(80)), AllowEntry.fqdn("api.payments.example"));
    g.getSpec().destinations.allow = allow;
    create(g);

    String holder = awaitCondition("gw", "Ready", "True", "Ready").getStatus().assignments.get(0).node;
    for (String node : Set.of(holder, nodeName("worker"))) { // the gateway role and a director
      assertThat(entry(node, "gw").allow).as(node).isEqualTo(allow);
    }
    assertThat(get("gw").getStatus().resolvedNames).as("not counted yet")
        .containsExactly(new ResolvedName("api.payments.example", 0, null));

    // The holder's agent counted its name's set (as the agent's ServiceAccount writes it).
    EgressNodeState s = state(holder, "gw");
    s.setStatus(new EgressNodeStateStatus());
    s.getStatus().appliedGeneration = s.getMetadata().getGeneration();
    s.getStatus().resolvedNames = List.of(new ResolvedName("api.payments.example", 3, "2026-11-30T01:52:05Z"));
    admin.resource(s).updateStatus();
    await().atMost(TIMEOUT).untilAsserted(() -> assertThat(get("gw").getStatus().resolvedNames)
        .containsExactly(new ResolvedName("api.payments.example", 3, "2026-11-30T01:52:05Z")));

    // The name taken out of the allow list: its count leaves the status (a merge patch keeps a field it leaves out).
    admin.resources(EgressGateway.class).withName(name("gw")).patch(PatchContext.of(PatchType.JSON_MERGE),
        admin.getKubernetesSerialization().asJson(Map.of("spec", Map.of("destinations",
            Map.of("allow", List.of(allow.get(0)))))));
    await().atMost(TIMEOUT).untilAsserted(() -> assertThat(get("gw").getStatus().resolvedNames).isEmpty());
  }

  @Test
  void nodeLabelsFollowSelectorsAndNodeLabels() {
    node("e1", true, "198.18.0.21");
    node("e2", true, "198.18.0.22");
    cluster.namespace(t, Map.of("team", t));
    create(gateway("gw", List.of("198.18.0.101")));
    await().atMost(TIMEOUT).until(() -> name("gw").equals(label("e1")) && name("gw").equals(label("e2")));

    cluster.labelNode(nodeName("e2"), "role", null);
    await().atMost(TIMEOUT).until(() -> label("e2") == null);
    await().atMost(TIMEOUT).until(() -> get("gw").getStatus().nodes.size() == 1);

    // A selector that no longer matches e1 but matches e2 again (by name) moves the label and the IP.
    editGateway(g -> {
      g.getSpec().nodeSelector = new LabelSelectorBuilder()
          .withMatchLabels(Map.of("kubernetes.io/hostname", nodeName("e2"))).build();
      return g;
    });
    await().atMost(TIMEOUT).until(() -> label("e1") == null && name("gw").equals(label("e2")));
    EgressGateway gw = awaitCondition("gw", "Ready", "True", "Ready");
    assertThat(gw.getStatus().assignments.get(0).node).isEqualTo(nodeName("e2"));

    editGateway(g -> {
      g.getSpec().nodeSelector = new LabelSelectorBuilder().withMatchLabels(Map.of("role", "none")).build();
      return g;
    });
    awaitCondition("gw", "Ready", "False", "NoMatchingNodes");
    await().atMost(TIMEOUT).until(() -> label("e2") == null);
  }

  @Test
  void notReadyNodeLosesItsIPWithStatusAndEvent() {
    node("e1", true, "198.18.0.31");
    node("e2", true, "198.18.0.32");
    cluster.namespace(t, Map.of("team", t));
    cluster.runningPod(t, "p", nodeName("e1"), podIP(1), Map.of());
    create(gateway("gw", List.of("198.18.0.102")));
    String holder = awaitCondition("gw", "Ready", "True", "Ready").getStatus().assignments.get(0).node;
    String other = otherOf(holder, "e1", "e2");

    cluster.setReady(holder, internalIP(holder), false);

    await().atMost(TIMEOUT).until(() -> other.equals(get("gw").getStatus().assignments.get(0).node));
    EgressGateway gw = awaitCondition("gw", "Degraded", "True", "NodesNotReady");
    assertThat(condition(gw, "Ready").getStatus()).isEqualTo("True");
    assertThat(gw.getStatus().nodes).filteredOn(n -> n.name.equals(holder)).singleElement()
        .satisfies(n -> assertThat(n.ready).isFalse());
    await().atMost(TIMEOUT).untilAsserted(() -> assertThat(events("gw")).anySatisfy(e -> {
      assertThat(e.getReason()).isEqualTo("EgressIPMoved");
      assertThat(e.getType()).isEqualTo("Warning");
      assertThat(e.getMessage()).contains("198.18.0.102", holder, other, "not ready");
    }));
    // The old holder no longer SNATs; the new one does.
    assertThat(entry(other, "gw").snat).extracting(s -> s.egressIP).containsExactly("198.18.0.102");
    await().atMost(TIMEOUT).untilAsserted(() -> assertThat(entryOrNull(holder, "gw") == null
        || entryOrNull(holder, "gw").snat.isEmpty()).isTrue());

    // Both down: NoReadyNode, and the director keeps steering with no gateway (the agent applies failurePolicy).
    cluster.setReady(other, internalIP(other), false);
    awaitCondition("gw", "Ready", "False", "NoReadyNode");
    assertThat(get("gw").getStatus().assignments).isEmpty();
    await().atMost(TIMEOUT).untilAsserted(() -> assertThat(entry(nodeName("e1"), "gw").steer).singleElement()
        .satisfies(s -> assertThat(s.gatewayNode).isNull()));
  }

  @Test
  void deadAgentLosesItsIPWithinTheHeartbeatTimeout() {
    node("e1", true, "198.18.0.33");
    node("e2", true, "198.18.0.34");
    cluster.namespace(t, Map.of("team", t));
    create(gateway("gw", List.of("198.18.0.105")));
    String holder = awaitCondition("gw", "Ready", "True", "Ready").getStatus().assignments.get(0).node;
    String other = otherOf(holder, "e1", "e2");

    long killed = System.nanoTime();
    cluster.stopAgent(holder); // the kubelet still reports Ready: only the Lease tells
    await().atMost(TIMEOUT).pollInterval(Duration.ofMillis(10))
        .until(() -> other.equals(entryOrNull(other, "gw") == null ? null
            : entry(other, "gw").snat.isEmpty() ? null : other));
    System.out.printf("agent stopped -> new holder's node state written: %d ms (heartbeat timeout 900 ms)%n",
        (System.nanoTime() - killed) / 1_000_000);
    // The status is written right after the node states (the same reconcile): on a loaded machine, a moment later.
    await().atMost(TIMEOUT).untilAsserted(() -> assertThat(get("gw").getStatus().nodes)
        .filteredOn(n -> n.name.equals(holder)).singleElement().satisfies(n -> assertThat(n.ready).isFalse()));

    cluster.startAgent(holder); // back: it may hold IPs again, but the IP stays where it is now (sticky)
    await().atMost(TIMEOUT).untilAsserted(() -> assertThat(get("gw").getStatus().nodes)
        .allSatisfy(n -> assertThat(n.ready).isTrue()));
    assertThat(get("gw").getStatus().assignments.get(0).node).isEqualTo(other);
  }

  @Test
  void theOlderGatewayKeepsAContestedIP() {
    node("e1", true, "198.18.0.41");
    cluster.namespace(t, Map.of("team", t));
    create(gateway("older", List.of("198.18.0.103")));
    awaitCondition("older", "Ready", "True", "Ready");
    sleepPastCreationSecond(); // creationTimestamp has one-second precision; a tie would fall back to the name
    create(gateway("newer", List.of("198.18.0.103", "198.18.0.104")));

    EgressGateway newer = awaitCondition("newer", "Ready", "False", "EgressIPConflict");
    assertThat(condition(newer, "Ready").getMessage()).contains("198.18.0.103", name("older"));
    assertThat(newer.getStatus().sourceIPs).containsExactly("198.18.0.104");
    assertThat(newer.getStatus().assignments).extracting(a -> a.egressIP).containsExactly("198.18.0.104");
    assertThat(get("older").getStatus().sourceIPs).containsExactly("198.18.0.103");
    await().atMost(TIMEOUT).untilAsserted(() -> assertThat(events("newer")).extracting(Event::getReason)
        .contains("EgressIPConflict"));
    // One label value per node: the older gateway's.
    assertThat(label("e1")).isEqualTo(name("older"));

    admin.resources(EgressGateway.class).withName(name("older")).delete();
    EgressGateway released = awaitCondition("newer", "Ready", "True", "Ready");
    assertThat(released.getStatus().sourceIPs).containsExactly("198.18.0.103", "198.18.0.104");
    await().atMost(TIMEOUT).until(() -> name("newer").equals(label("e1")));
  }

  @Test
  void nodeStatesFollowPodsComingAndGoing() {
    node("e1", true, "198.18.0.51");
    node("w1", false, "198.18.0.52");
    cluster.namespace(t, Map.of("team", t));
    create(gateway("gw", List.of("198.18.0.105")));
    awaitCondition("gw", "Ready", "True", "Ready");
    assertThat(state(nodeName("w1"), "gw")).isNull();

    cluster.runningPod(t, "a", nodeName("w1"), podIP(1), Map.of("app", "a"));
    await().atMost(TIMEOUT).untilAsserted(() -> assertThat(entry(nodeName("w1"), "gw").steer.get(0).sources)
        .containsExactly(podIP(1)));
    cluster.runningPod(t, "b", nodeName("w1"), podIP(2), Map.of("app", "b"));
    await().atMost(TIMEOUT).untilAsserted(() -> assertThat(entry(nodeName("e1"), "gw").snat.get(0).sources)
        .containsExactly(podIP(1), podIP(2)));

    // A podSelector that drops pod b.
    editGateway(g -> {
      g.getSpec().sources.podSelector = new LabelSelectorBuilder().withMatchLabels(Map.of("app", "a")).build();
      return g;
    });
    await().atMost(TIMEOUT).untilAsserted(() -> assertThat(entry(nodeName("e1"), "gw").snat.get(0).sources)
        .containsExactly(podIP(1)));

    cluster.deletePod(t, "a");
    await().atMost(TIMEOUT).until(() -> state(nodeName("w1"), "gw") == null);
    await().atMost(TIMEOUT).untilAsserted(() -> assertThat(entry(nodeName("e1"), "gw").snat.get(0).sources).isEmpty());
    assertThat(get("gw").getStatus().selectedPods).isZero();

    // Namespace labels count too: unlabelled namespace, nothing selected.
    cluster.runningPod(t, "c", nodeName("w1"), podIP(3), Map.of("app", "a"));
    await().atMost(TIMEOUT).until(() -> get("gw").getStatus().selectedPods == 1);
    cluster.namespace(t, Map.of("team", "someone-else"));
    await().atMost(TIMEOUT).until(() -> get("gw").getStatus().selectedPods == 0);
  }

  @Test
  void deletingAGatewayRemovesLabelsNodeStatesAndFinalizer() {
    node("e1", true, "198.18.0.61");
    node("w1", false, "198.18.0.62");
    cluster.namespace(t, Map.of("team", t));
    cluster.runningPod(t, "a", nodeName("w1"), podIP(1), Map.of());
    create(gateway("gw", List.of("198.18.0.106")));
    awaitCondition("gw", "Ready", "True", "Ready");
    await().atMost(TIMEOUT).until(() -> entryOrNull(nodeName("w1"), "gw") != null);

    admin.resources(EgressGateway.class).withName(name("gw")).delete();

    await().atMost(TIMEOUT).until(() -> admin.resources(EgressGateway.class).withName(name("gw")).get() == null);
    assertThat(label("e1")).isNull();
    assertThat(state(nodeName("e1"), "gw")).isNull();
    assertThat(state(nodeName("w1"), "gw")).isNull();
  }

  @Test
  void aRestartedOperatorWritesNothing() {
    node("e1", true, "198.18.0.71");
    node("w1", false, "198.18.0.72");
    cluster.namespace(t, Map.of("team", t));
    cluster.runningPod(t, "a", nodeName("w1"), podIP(1), Map.of());
    create(gateway("gw", List.of("198.18.0.107")));
    create(gateway("gw2", List.of()));
    awaitCondition("gw", "Ready", "True", "Ready");
    awaitCondition("gw2", "Ready", "True", "Ready");
    await().atMost(TIMEOUT).until(() -> entryOrNull(nodeName("w1"), "gw2") != null);
    Map<String, String> before = resourceVersions();

    operator.close();
    operator = new OperatorRunner(controlPlane);
    await().atMost(TIMEOUT).until(() -> operator.reconciles() >= 2);

    assertThat(resourceVersions()).isEqualTo(before);
    assertThat(get("gw2").getStatus().sourceIPs).containsExactly("198.18.0.71");
  }

  @Test
  void refusedWriteIsReadyFalseWithItsReason() {
    failuresExpected = true;
    String policy = "natgate-it-" + t;
    // An admission policy refuses this gateway's node states, as a 422 from the API server.
    admin.load(new java.io.ByteArrayInputStream("""
        apiVersion: admissionregistration.k8s.io/v1
        kind: ValidatingAdmissionPolicy
        metadata: {name: %s}
        spec:
          failurePolicy: Fail
          matchConstraints:
            resourceRules:
              - {apiGroups: [natgate.io], apiVersions: ["*"], operations: [CREATE, UPDATE], resources: [egressnodestates]}
          validations:
            - expression: "object.spec.gateway != '%s'"
              message: refused by the test's policy
        ---
        apiVersion: admissionregistration.k8s.io/v1
        kind: ValidatingAdmissionPolicyBinding
        metadata: {name: %s}
        spec: {policyName: %s, validationActions: [Deny]}
        """.formatted(policy, name("gw"), policy, policy).getBytes(java.nio.charset.StandardCharsets.UTF_8)))
        .serverSideApply();
    try {
      var probe = new EgressNodeState();
      probe.setMetadata(new ObjectMetaBuilder().withName(EgressNodeState.nameFor(name("gw"), "probe")).build());
      probe.setSpec(new io.natgate.api.v1alpha1.EgressNodeStateSpec("probe", name("gw"), new NodeGatewayState()));
      await().atMost(TIMEOUT).until(() -> { // the policy takes effect a moment after it is created
        try {
          admin.resource(probe).create();
          admin.resource(probe).delete();
          return false;
        } catch (io.fabric8.kubernetes.client.KubernetesClientException e) {
          return e.getCode() == 422;
        }
      });
      node("e1", true, "198.18.0.81");
      cluster.namespace(t, Map.of("team", t));
      create(gateway("gw", List.of("198.18.0.108")));

      EgressGateway gw = awaitCondition("gw", "Ready", "False", "Invalid");
      assertThat(condition(gw, "Ready").getMessage()).contains("refused by the test's policy");
      assertThat(events("gw")).as("nothing announced that was not written").isEmpty();
    } finally {
      admin.admissionRegistration().v1().validatingAdmissionPolicyBindings().withName(policy).delete();
      admin.admissionRegistration().v1().validatingAdmissionPolicies().withName(policy).delete();
    }
    // Allowed again: the next event (here a node's label) reconciles it to Ready.
    admin.nodes().withName(nodeName("e1")).edit(n -> {
      n.getMetadata().getLabels().put("natgate.io/test-touch", "1");
      return n;
    });
    awaitCondition("gw", "Ready", "True", "Ready");
    await().atMost(TIMEOUT).until(() -> entryOrNull(nodeName("e1"), "gw") != null);
  }

  // --- helpers -----------------------------------------------------------------------------------------------

  private static void sleepPastCreationSecond() {
    try {
      Thread.sleep(1100);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private Map<String, String> resourceVersions() {
    Map<String, String> versions = new HashMap<>();
    admin.resources(EgressGateway.class).list().getItems().forEach(g -> versions.put("egw/" + g.getMetadata().getName(),
        g.getMetadata().getResourceVersion()));
    admin.resources(EgressNodeState.class).list().getItems().forEach(s -> versions.put("state/"
        + s.getMetadata().getName(), s.getMetadata().getResourceVersion()));
    nodes.forEach(n -> versions.put("node/" + n, admin.nodes().withName(n).get().getMetadata().getResourceVersion()));
    versions.put("events", String.valueOf(admin.v1().events().inNamespace("default").list().getItems().size()));
    return versions;
  }

  private String name(String gateway) {
    return t + "-" + gateway;
  }

  private String nodeName(String node) {
    return t + "-" + node;
  }

  private String podIP(int host) {
    return "198.19." + subnet + "." + host;
  }

  private void node(String node, boolean egress, String ip) {
    nodes.add(nodeName(node));
    Map<String, String> labels = new HashMap<>(Map.of("kubernetes.io/hostname", nodeName(node)));
    if (egress) {
      labels.put("role", "egress-" + t);
    }
    cluster.node(nodeName(node), ip, labels);
    cluster.startAgent(nodeName(node));
  }

  private String internalIP(String node) {
    return admin.nodes().withName(node).get().getStatus().getAddresses().get(0).getAddress();
  }

  private String otherOf(String holder, String a, String b) {
    return holder.equals(nodeName(a)) ? nodeName(b) : nodeName(a);
  }

  private String otherEgress(String holder) {
    return otherOf(holder, "egress-a", "egress-b");
  }

  private EgressGateway gateway(String name, List<String> ips) {
    EgressGateway g = new EgressGateway();
    g.setMetadata(new ObjectMetaBuilder().withName(name(name)).build());
    g.setSpec(new EgressGatewaySpec());
    g.getSpec().nodeSelector = new LabelSelectorBuilder().withMatchLabels(Map.of("role", "egress-" + t)).build();
    g.getSpec().egressIPs = new ArrayList<>(ips);
    g.getSpec().sources = new Sources(new LabelSelectorBuilder().withMatchLabels(Map.of("team", t)).build(), null);
    return g;
  }

  private void create(EgressGateway g) {
    admin.resource(g).create();
  }

  /**
   * Edits the gateway "gw", again when the edit lost the race with the operator's status write (edit() locks on the
   * resourceVersion it read: a 409 under load).
   */
  private void editGateway(UnaryOperator<EgressGateway> change) {
    for (int attempt = 1; ; attempt++) {
      try {
        admin.resources(EgressGateway.class).withName(name("gw")).edit(change);
        return;
      } catch (KubernetesClientException e) {
        if (e.getCode() != 409 || attempt == 5) {
          throw e;
        }
      }
    }
  }

  private EgressGateway get(String gateway) {
    return admin.resources(EgressGateway.class).withName(name(gateway)).get();
  }

  private String label(String node) {
    var labels = admin.nodes().withName(nodeName(node)).get().getMetadata().getLabels();
    return labels.get(NodeLabels.GATEWAY);
  }

  private static Condition condition(EgressGateway g, String type) {
    return g.getStatus().conditions.stream().filter(c -> type.equals(c.getType())).findFirst().orElseThrow();
  }

  private EgressGateway awaitCondition(String gateway, String type, String status, String reason) {
    return await().atMost(TIMEOUT).until(() -> get(gateway), g -> g != null && g.getStatus() != null
        && g.getStatus().conditions.stream().anyMatch(c -> type.equals(c.getType()) && status.equals(c.getStatus())
            && reason.equals(c.getReason())));
  }

  private EgressNodeState state(String node, String gateway) {
    return admin.resources(EgressNodeState.class).withName(EgressNodeState.nameFor(name(gateway), node)).get();
  }

  private NodeGatewayState entryOrNull(String node, String gateway) {
    EgressNodeState s = state(node, gateway);
    return s == null ? null : s.getSpec();
  }

  private NodeGatewayState entry(String node, String gateway) {
    return await().atMost(TIMEOUT).until(() -> entryOrNull(node, gateway), e -> e != null);
  }

  private void reportApplied(String node, String gateway) {
    EgressNodeState s = state(node, gateway);
    if (s == null) {
      return;
    }
    s.setStatus(new EgressNodeStateStatus());
    s.getStatus().appliedGeneration = s.getMetadata().getGeneration();
    admin.resource(s).updateStatus();
  }

  private List<Event> events(String gateway) {
    return admin.v1().events().inNamespace("default").list().getItems().stream()
        .filter(e -> name(gateway).equals(e.getInvolvedObject().getName())).collect(Collectors.toList());
  }
}
