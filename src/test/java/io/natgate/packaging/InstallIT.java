package io.natgate.packaging;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.ObjectMetaBuilder;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.PodTemplateSpec;
import io.fabric8.kubernetes.api.model.apps.DaemonSet;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.plan.NodeLabels;
import io.natgate.testing.Cluster;
import io.natgate.testing.ControlPlane;
import io.natgate.testing.Kubectl;
import io.natgate.testing.OperatorRunner;
import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Installs natgate with kubectl the way the README says, on a control plane of its own (uninstalling deletes
 * natgate-system, which nothing here would ever finish deleting: the shared control plane must keep it).
 * There is no kubelet, scheduler or controller-manager: workloads are admitted and stored but never run, and the
 * operator runs in-process as the ServiceAccount that config/default created.
 */
class InstallIT {
  private static final Duration TIMEOUT = Duration.ofSeconds(60);

  @Test
  void installsWithKubectlAndUninstallsInTheDocumentedOrder() throws Exception {
    try (ControlPlane controlPlane = ControlPlane.empty(); Kubectl kubectl = new Kubectl(controlPlane)) {
      KubernetesClient admin = controlPlane.admin();
      List<HasMetadata> objects = kustomize(kubectl, admin, "config/default");
      assertThat(objects).extracting(HasMetadata::getKind).contains("Namespace", "CustomResourceDefinition",
          "ClusterRole", "Deployment", "DaemonSet");

      // Strict field validation: an unknown or misplaced field in any manifest fails here, not on a user's cluster.
      // The dry run cannot create natgate-system, so objects in it are dry-run after the namespace exists.
      expectSuccess(kubectl.run("apply", "--server-side", "--dry-run=server", "--validate=strict",
          "-f", "config/default/namespace.yaml"));
      assertThat(admin.namespaces().withName(ControlPlane.OPERATOR_NAMESPACE).get()).as("dry run created it").isNull();
      expectSuccess(kubectl.run("apply", "--server-side", "--validate=strict", "-f", "config/default/namespace.yaml"));
      expectSuccess(kubectl.run("apply", "--server-side", "--dry-run=server", "--validate=strict",
          "-k", "config/default"));
      assertThat(admin.apps().deployments().inAnyNamespace().list().getItems()).as("dry run created it").isEmpty();

      expectSuccess(kubectl.run("apply", "--server-side", "--validate=strict", "-k", "config/default"));
      objects.forEach(o -> assertThat(admin.resource(o).get()).as("%s %s", o.getKind(), name(o)).isNotNull());
      // No controller makes their pods here: dry-run them, so that pod admission (Pod Security level of the
      // namespace, priority class, ServiceAccount) sees what the Deployment and DaemonSet controllers would send.
      for (HasMetadata o : objects) {
        PodTemplateSpec template = o instanceof Deployment d ? d.getSpec().getTemplate()
            : o instanceof DaemonSet ds ? ds.getSpec().getTemplate() : null;
        if (template != null) {
          admin.pods().inNamespace(ControlPlane.OPERATOR_NAMESPACE).resource(new PodBuilder()
              .withMetadata(new ObjectMetaBuilder(template.getMetadata()).withName(o.getMetadata().getName() + "-x")
                  .build()).withSpec(template.getSpec()).build()).dryRun().create();
        }
      }

      // The operator, under exactly the RBAC just installed, puts a gateway in effect.
      try (OperatorRunner operator = new OperatorRunner(controlPlane)) {
        applySampleGateway(kubectl, admin);

        // The README's firewall allowlist command.
        Kubectl.Result allowlist = kubectl.run("get", "egw", "-o",
            "jsonpath={range .items[*]}{range .status.sourceIPs[*]}{@}{\"/32\\n\"}{end}{end}");
        expectSuccess(allowlist);
        assertThat(allowlist.out()).isEqualTo("198.18.0.100/32\n");

        // Documented order: gateways first, while the operator still runs to clean up after them.
        expectSuccess(kubectl.run("delete", "egressgateways", "--all", "--wait", "--timeout=60s"));
        assertCleanedUp(admin);
        assertThat(operator.failures()).as("failed reconciliations (403 = missing permission)").isZero();
      }

      expectSuccess(kubectl.run("delete", "-k", "config/default", "--wait=false"));
      for (HasMetadata o : objects) {
        HasMetadata left = admin.resource(o).get();
        if (o.getKind().equals("Namespace")) {
          // No namespace controller here to empty and remove it: deleting it is all kubectl can be asked for.
          assertThat(left.getMetadata().getDeletionTimestamp()).as("natgate-system terminating").isNotNull();
        } else {
          await(o.getKind() + " " + name(o) + " deleted").atMost(TIMEOUT).until(() -> admin.resource(o).get() == null);
        }
      }
    }
  }

  @Test
  void deletingTheCrdWhileGatewaysExistStillRunsTheirCleanup() throws Exception {
    try (ControlPlane controlPlane = ControlPlane.empty(); Kubectl kubectl = new Kubectl(controlPlane)) {
      KubernetesClient admin = controlPlane.admin();
      expectSuccess(kubectl.run("apply", "--server-side", "-f", "config/default/namespace.yaml"));
      expectSuccess(kubectl.run("apply", "--server-side", "-k", "config/default"));
      try (OperatorRunner operator = new OperatorRunner(controlPlane)) {
        applySampleGateway(kubectl, admin);

        // The API server deletes the gateways first; their finalizer holds the CRD until the operator has cleaned up.
        expectSuccess(kubectl.run("delete", "crd", "egressgateways.natgate.io", "--wait", "--timeout=60s"));
        assertCleanedUp(admin);
      }
    }
  }

  /** `kubectl kustomize` output, which must be what the bundle generator reads from the same base. */
  private static List<HasMetadata> kustomize(Kubectl kubectl, KubernetesClient admin, String base) throws Exception {
    Kubectl.Result built = kubectl.run("kustomize", base);
    expectSuccess(built);
    assertThat(new HashSet<>((List<?>) numbersByValue(Yaml.readAll(built.out()))))
        .as("kubectl kustomize %s and the bundle generator's reading of it", base)
        .isEqualTo(new HashSet<>((List<?>) numbersByValue(Kustomize.build(ControlPlane.repo().resolve(base)))));
    return admin.load(new ByteArrayInputStream(built.out().getBytes(StandardCharsets.UTF_8))).items();
  }

  /**
   * The same manifests with whole numbers as longs: the CRD generator writes a bound as 65535.0, which kubectl
   * prints as 65535 (the same number to the API server).
   */
  private static Object numbersByValue(Object o) {
    if (o instanceof Map<?, ?> m) {
      var copy = new java.util.LinkedHashMap<Object, Object>();
      m.forEach((k, v) -> copy.put(k, numbersByValue(v)));
      return copy;
    }
    if (o instanceof List<?> l) {
      return l.stream().map(InstallIT::numbersByValue).toList();
    }
    if (o instanceof Number n && n.doubleValue() == Math.rint(n.doubleValue())) {
      return n.longValue();
    }
    return o;
  }

  /** config/samples' gateway, with a node and a pod for it, until it holds its node, its IP and a node state. */
  private static void applySampleGateway(Kubectl kubectl, KubernetesClient admin) throws Exception {
    var cluster = new Cluster(admin);
    cluster.node("egress-1", "198.19.0.11", Map.of("node-role.kubernetes.io/egress", ""));
    cluster.namespace("payments", Map.of("team", "payments"));
    cluster.runningPod("payments", "app", "egress-1", "10.244.0.5", Map.of());
    expectSuccess(kubectl.run("apply", "--server-side", "-k", "config/samples"));
    await().atMost(TIMEOUT).until(() -> {
      EgressGateway g = admin.resources(EgressGateway.class).withName("payments").get();
      return g != null && !g.getMetadata().getFinalizers().isEmpty() && g.getStatus() != null
          && g.getStatus().sourceIPs.contains("198.18.0.100")
          && "payments".equals(nodeLabels(admin).get(NodeLabels.GATEWAY))
          && !admin.resources(EgressNodeState.class).list().getItems().isEmpty();
    });
  }

  private static void assertCleanedUp(KubernetesClient admin) {
    await().atMost(TIMEOUT).untilAsserted(() -> {
      assertThat(nodeLabels(admin)).doesNotContainKey(NodeLabels.GATEWAY);
      assertThat(admin.resources(EgressNodeState.class).list().getItems()).isEmpty();
    });
  }

  private static Map<String, String> nodeLabels(KubernetesClient admin) {
    return admin.nodes().withName("egress-1").get().getMetadata().getLabels();
  }

  private static void expectSuccess(Kubectl.Result result) {
    assertThat(result.exitCode()).as(result.summary()).isZero();
  }

  private static String name(HasMetadata o) {
    return o.getMetadata().getNamespace() == null ? o.getMetadata().getName()
        : o.getMetadata().getNamespace() + "/" + o.getMetadata().getName();
  }
}
