package io.natgate.packaging;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/** The kustomize bases in config/ hang together: what refers to what exists, and nothing grants more than named. */
class ManifestsTest {
  private static final Path CONFIG = Path.of("config");
  private static final List<Map<String, Object>> DEFAULT = Kustomize.build(CONFIG.resolve("default"));
  private static final List<Map<String, Object>> MONITORING = Kustomize.build(CONFIG.resolve("prometheus"));

  /** ControlPlane applies every file of config/rbac, the bundle generator only the listed ones: they must agree. */
  @Test
  void everyManifestOfABaseIsListedInItsKustomization() throws IOException {
    try (Stream<Path> kustomizations = Stream.concat(Files.walk(CONFIG), Stream.of(Path.of("crds")))
        .filter(d -> Files.exists(d.resolve("kustomization.yaml")))) {
      for (Path dir : kustomizations.toList()) {
        try (Stream<Path> files = Files.list(dir)) {
          assertThat(files.filter(f -> f.toString().matches(".*\\.ya?ml$") && !f.endsWith("kustomization.yaml"))
              .map(Path::normalize)).as("manifests of %s", dir).allMatch(Kustomize.files(dir)::contains);
        }
      }
    }
  }

  @Test
  void rbacNamesEveryGroupResourceAndVerb() {
    for (Map<String, Object> role : DEFAULT) {
      for (Map<String, Object> rule : Yaml.list(role, "rules")) {
        assertThat(Stream.of("apiGroups", "resources", "verbs").<Object>flatMap(k -> ((List<?>) rule.get(k)).stream()))
            .as("%s %s", role.get("kind"), Yaml.string(role, "metadata", "name")).doesNotContain("*");
      }
    }
  }

  @Test
  void workloadsRunAsServiceAccountsThatAreBound() {
    for (Map<String, Object> workload : workloads()) {
      String account = Yaml.string(workload, "spec", "template", "spec", "serviceAccountName");
      assertThat(DEFAULT).as("ServiceAccount %s", account).anyMatch(o -> "ServiceAccount".equals(o.get("kind"))
          && account.equals(Yaml.string(o, "metadata", "name")));
      assertThat(DEFAULT).as("a binding for %s", account).anyMatch(o -> Yaml.list(o, "subjects").stream()
          .anyMatch(s -> account.equals(s.get("name"))));
    }
  }

  @Test
  void everythingNamespacedIsInAPrivilegedNatgateSystem() {
    Map<String, Object> namespace = BundleGenerator.ofKind(DEFAULT, "Namespace").get(0);
    assertThat(Yaml.string(namespace, "metadata", "name")).isEqualTo(BundleGenerator.INSTALL_NAMESPACE);
    assertThat(Yaml.at(namespace, "metadata", "labels"))
        .containsEntry("pod-security.kubernetes.io/enforce", "privileged");
    List<Map<String, Object>> all = new ArrayList<>(DEFAULT);
    all.addAll(MONITORING);
    all.stream().map(o -> Yaml.at(o, "metadata").get("namespace")).filter(Objects::nonNull)
        .forEach(ns -> assertThat(ns).isEqualTo(BundleGenerator.INSTALL_NAMESPACE));
    assertThat(DEFAULT).extracting(o -> o.get("kind"))
        .contains("CustomResourceDefinition", "ClusterRole", "Deployment", "DaemonSet");
  }

  @Test
  void probesServicesAndMonitorsPointAtDeclaredPorts() {
    for (Map<String, Object> workload : workloads()) {
      for (Map<String, Object> c : containers(workload)) {
        List<Object> ports = Yaml.list(c, "ports").stream().map(p -> p.get("name")).toList();
        Stream.of("readinessProbe", "livenessProbe", "startupProbe").forEach(probe ->
            assertThat(Yaml.at(c, probe, "httpGet").get("port")).as("%s %s", c.get("name"), probe).isIn(ports));
      }
    }
    List<Map<String, Object>> services = BundleGenerator.ofKind(MONITORING, "Service");
    for (Map<String, Object> service : services) {
      Map<String, Object> selector = Yaml.at(service, "spec", "selector");
      List<Map<String, Object>> selected = workloads().stream()
          .filter(w -> Yaml.at(w, "spec", "template", "metadata", "labels").entrySet()
              .containsAll(selector.entrySet())).toList();
      assertThat(selected).as("workloads behind Service %s", Yaml.string(service, "metadata", "name")).hasSize(1);
      List<Object> containerPorts = containers(selected.get(0)).stream()
          .flatMap(c -> Yaml.list(c, "ports").stream()).map(p -> p.get("name")).toList();
      Yaml.list(Yaml.at(service, "spec"), "ports").forEach(p -> assertThat(p.get("targetPort")).isIn(containerPorts));
    }
    for (Map<String, Object> monitor : BundleGenerator.ofKind(MONITORING, "ServiceMonitor")) {
      Map<String, Object> wanted = Yaml.at(monitor, "spec", "selector", "matchLabels");
      List<Map<String, Object>> matched = services.stream()
          .filter(s -> Yaml.at(s, "metadata", "labels").entrySet().containsAll(wanted.entrySet())).toList();
      assertThat(matched).as("Services of ServiceMonitor %s", Yaml.string(monitor, "metadata", "name")).hasSize(1);
      List<Object> servicePorts = Yaml.list(Yaml.at(matched.get(0), "spec"), "ports").stream()
          .map(p -> p.get("name")).toList();
      Yaml.list(Yaml.at(monitor, "spec"), "endpoints").forEach(e -> assertThat(e.get("port")).isIn(servicePorts));
    }
  }

  /** NET_ADMIN and NET_RAW on the host network, not a privileged container. */
  @Test
  void theAgentGetsOnlyTheCapabilitiesItNeeds() {
    Map<String, Object> agent = BundleGenerator.ofKind(DEFAULT, "DaemonSet").get(0);
    Map<String, Object> pod = Yaml.at(agent, "spec", "template", "spec");
    assertThat(pod).containsEntry("hostNetwork", true).containsEntry("dnsPolicy", "ClusterFirstWithHostNet");
    assertThat(Yaml.list(pod, "tolerations")).containsExactly(Map.of("operator", "Exists"));
    for (Map<String, Object> c : containers(agent)) {
      Map<String, Object> security = Yaml.at(c, "securityContext");
      assertThat(security.get("privileged")).isNotEqualTo(true);
      assertThat(security).containsEntry("allowPrivilegeEscalation", false);
      assertThat(Yaml.at(security, "capabilities")).containsEntry("drop", List.of("ALL"))
          .containsEntry("add", List.of("NET_ADMIN", "NET_RAW"));
    }
  }

  private static List<Map<String, Object>> workloads() {
    return DEFAULT.stream().filter(o -> List.of("Deployment", "DaemonSet").contains(o.get("kind"))).toList();
  }

  private static List<Map<String, Object>> containers(Map<String, Object> workload) {
    return Yaml.list(Yaml.at(workload, "spec", "template", "spec"), "containers");
  }
}
