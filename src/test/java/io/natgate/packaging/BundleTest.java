package io.natgate.packaging;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The committed bundle against OLM's rules for a registry+v1 bundle, and against the sources it stands for
 * (crds/, config/rbac, config/manager, config/agent). Written apart from the generator: it checks the result,
 * not the generator's way of getting there.
 */
class BundleTest {
  private static final Path REPO = Path.of(".");
  private static final Path MANIFESTS = REPO.resolve("bundle/manifests");
  private static final Path CSV_FILE = MANIFESTS.resolve("natgate.clusterserviceversion.yaml");
  /** The kinds OLM installs from a bundle (operator-registry's supported resources); a DaemonSet is not one. */
  private static final Set<String> OLM_KINDS = Set.of("ClusterServiceVersion", "CustomResourceDefinition", "Secret",
      "ClusterRole", "ClusterRoleBinding", "ConfigMap", "ServiceAccount", "Service", "Role", "RoleBinding",
      "PrometheusRule", "ServiceMonitor", "PodDisruptionBudget", "PriorityClass", "VerticalPodAutoscaler",
      "ConsoleYAMLSample", "ConsoleQuickStart", "ConsoleCLIDownload", "ConsoleLink", "ConsolePlugin", "NetworkPolicy",
      "PodMonitor");

  private final Map<String, Object> csv = Yaml.readOne(CSV_FILE);
  private final Map<String, Object> spec = Yaml.at(csv, "spec");

  @Test
  void everyManifestIsOfAKindOlmInstalls() throws IOException {
    try (Stream<Path> files = Files.list(MANIFESTS)) {
      assertThat(files.flatMap(f -> Yaml.readAll(f).stream()).map(o -> (String) o.get("kind")))
          .containsOnlyOnce("ClusterServiceVersion").allMatch(OLM_KINDS::contains);
    }
  }

  @Test
  void everyCrdIsInTheBundleUnchangedAndOwned() throws IOException {
    List<Map<String, Object>> owned = Yaml.list(Yaml.at(spec, "customresourcedefinitions"), "owned");
    List<String> crdNames = new ArrayList<>();
    for (Path crdFile : Kustomize.files(REPO.resolve("crds"))) {
      Path inBundle = MANIFESTS.resolve(crdFile.getFileName());
      assertThat(inBundle).exists();
      assertThat(Files.readString(inBundle)).as("bundle copy of %s", crdFile).isEqualTo(Files.readString(crdFile));
      Map<String, Object> crd = Yaml.readOne(crdFile);
      String name = Yaml.string(crd, "metadata", "name");
      crdNames.add(name);
      Map<String, Object> entry = owned.stream().filter(o -> name.equals(o.get("name"))).findFirst().orElse(null);
      assertThat(entry).as("owned entry for %s", name).isNotNull();
      assertThat(entry.get("kind")).isEqualTo(Yaml.string(crd, "spec", "names", "kind"));
      assertThat(Yaml.list(Yaml.at(crd, "spec"), "versions"))
          .as("%s version %s is served", name, entry.get("version"))
          .anyMatch(v -> v.get("name").equals(entry.get("version")) && Boolean.TRUE.equals(v.get("served")));
      assertThat(entry).containsKeys("displayName", "description");
      descriptorPaths(entry)
          .forEach(path -> assertThat(schemaHas(crd, path)).as("%s: no field %s", name, path).isTrue());
    }
    assertThat(owned).extracting(o -> (String) o.get("name")).containsExactlyInAnyOrderElementsOf(crdNames);
  }

  @Test
  void permissionsAreExactlyThoseOfConfigRbac() {
    List<Map<String, Object>> rbac = Kustomize.build(REPO.resolve("config/rbac"));
    Set<List<Object>> granted = new HashSet<>();
    for (Map<String, Object> binding : rbac) {
      boolean cluster = "ClusterRoleBinding".equals(binding.get("kind"));
      if (!cluster && !"RoleBinding".equals(binding.get("kind"))) {
        continue;
      }
      Map<String, Object> ref = Yaml.at(binding, "roleRef");
      Map<String, Object> role = rbac.stream().filter(o -> o.get("kind").equals(ref.get("kind"))
          && Yaml.string(o, "metadata", "name").equals(ref.get("name"))).findFirst().orElseThrow();
      for (Map<String, Object> subject : Yaml.list(binding, "subjects")) {
        Yaml.list(role, "rules").forEach(rule -> granted.add(List.of(cluster, subject.get("name"), rule)));
      }
    }
    Map<String, Object> install = Yaml.at(spec, "install", "spec");
    Set<List<Object>> inCsv = new HashSet<>();
    Yaml.list(install, "clusterPermissions").forEach(p -> Yaml.list(p, "rules")
        .forEach(rule -> inCsv.add(List.of(true, p.get("serviceAccountName"), rule))));
    Yaml.list(install, "permissions").forEach(p -> Yaml.list(p, "rules")
        .forEach(rule -> inCsv.add(List.of(false, p.get("serviceAccountName"), rule))));
    assertThat(inCsv).as("CSV (cluster-wide?, ServiceAccount, rule) vs config/rbac").isEqualTo(granted);

    Set<Object> accounts = new HashSet<>();
    inCsv.forEach(grant -> accounts.add(grant.get(1)));
    assertThat(accounts).as("every workload's ServiceAccount gets its permissions from the CSV")
        .containsAll(workloads().stream().map(w -> Yaml.string(w, "spec", "template", "spec", "serviceAccountName"))
            .toList());
  }

  @Test
  void theInstallStrategyIsTheManagerDeployment() {
    List<Map<String, Object>> deployments = Yaml.list(Yaml.at(spec, "install", "spec"), "deployments");
    List<Map<String, Object>> manager = BundleGenerator.ofKind(Kustomize.build(REPO.resolve("config/manager")),
        "Deployment");
    assertThat(Yaml.at(spec, "install").get("strategy")).isEqualTo("deployment");
    assertThat(deployments).hasSameSizeAs(manager);
    for (int i = 0; i < manager.size(); i++) {
      assertThat(deployments.get(i).get("name")).isEqualTo(Yaml.string(manager.get(i), "metadata", "name"));
      assertThat(deployments.get(i).get("spec")).isEqualTo(manager.get(i).get("spec"));
    }
  }

  @Test
  void relatedImagesAreEveryImageAtTheBundleVersion() {
    Set<String> used = new HashSet<>();
    workloads().forEach(w -> Yaml.list(Yaml.at(w, "spec", "template", "spec"), "containers")
        .forEach(c -> used.add((String) c.get("image"))));
    List<Map<String, Object>> related = Yaml.list(spec, "relatedImages");
    assertThat(related).extracting(r -> (String) r.get("image")).containsExactlyInAnyOrderElementsOf(used);
    assertThat(related).extracting(r -> r.get("name")).doesNotHaveDuplicates().doesNotContainNull();
    assertThat(used).as("image tags follow the CSV version").allMatch(i -> i.endsWith(":" + spec.get("version")));
    Map<String, Object> operator = Yaml.list(Yaml.at(spec, "install", "spec"), "deployments").get(0);
    assertThat(Yaml.at(csv, "metadata", "annotations").get("containerImage"))
        .isEqualTo(Yaml.list(Yaml.at(operator, "spec", "template", "spec"), "containers").get(0).get("image"));
  }

  @Test
  void annotationsDockerfileAndCsvAgree() throws IOException {
    Map<String, Object> annotations = Yaml.at(Yaml.readOne(REPO.resolve("bundle/metadata/annotations.yaml")),
        "annotations");
    String prefix = "operators.operatorframework.io.bundle.";
    assertThat(annotations.get(prefix + "mediatype.v1")).isEqualTo("registry+v1");
    assertThat(REPO.resolve("bundle").resolve((String) annotations.get(prefix + "manifests.v1"))).isEqualTo(MANIFESTS)
        .isDirectory();
    assertThat(REPO.resolve("bundle").resolve((String) annotations.get(prefix + "metadata.v1"))).isDirectory();
    assertThat(Yaml.string(csv, "metadata", "name"))
        .isEqualTo(annotations.get(prefix + "package.v1") + ".v" + spec.get("version"));
    assertThat(List.of(((String) annotations.get(prefix + "channels.v1")).split(",")))
        .contains((String) annotations.get(prefix + "channel.default.v1"));

    Map<String, Object> labels = new LinkedHashMap<>();
    List<String> copies = new ArrayList<>();
    for (String line : Files.readAllLines(REPO.resolve("bundle.Dockerfile"))) {
      if (line.startsWith("LABEL ")) {
        String[] kv = line.substring(6).split("=", 2);
        labels.put(kv[0], kv[1]);
      } else if (line.startsWith("COPY ")) {
        copies.add(line);
      }
    }
    assertThat(labels).as("bundle.Dockerfile labels = metadata/annotations.yaml").isEqualTo(annotations);
    assertThat(copies).containsExactlyInAnyOrder(copy((String) annotations.get(prefix + "manifests.v1")),
        copy((String) annotations.get(prefix + "metadata.v1")));
  }

  @Test
  void installsInAllNamespacesWithTheMetadataOperatorHubShows() {
    Map<Object, Object> modes = new LinkedHashMap<>();
    Yaml.list(spec, "installModes").forEach(m -> modes.put(m.get("type"), m.get("supported")));
    assertThat(modes).containsOnly(Map.entry("AllNamespaces", true), Map.entry("OwnNamespace", false),
        Map.entry("SingleNamespace", false), Map.entry("MultiNamespace", false));
    assertThat((String) spec.get("version")).matches("\\d+\\.\\d+\\.\\d+(-[0-9A-Za-z.-]+)?");
    assertThat((String) spec.get("minKubeVersion")).matches("\\d+\\.\\d+\\.\\d+");
    assertThat(spec).containsKeys("displayName", "description", "keywords", "maintainers", "provider", "links");
    Map<String, Object> icon = Yaml.list(spec, "icon").get(0);
    assertThat(new String(Base64.getDecoder().decode((String) icon.get("base64data")), StandardCharsets.UTF_8))
        .startsWith("<svg");
    assertThat(icon.get("mediatype")).isEqualTo("image/svg+xml");

    // alm-examples is JSON, and JSON is YAML.
    List<Map<String, Object>> examples = Yaml.readList((String) Yaml.at(csv, "metadata", "annotations")
        .get("alm-examples"));
    assertThat(examples).isNotEmpty().extracting(e -> e.get("kind"))
        .allMatch(kind -> Yaml.list(Yaml.at(spec, "customresourcedefinitions"), "owned").stream()
            .anyMatch(o -> kind.equals(o.get("kind"))));
  }

  /** The line that copies a bundle directory (manifests/) to where OLM reads it (/manifests/). */
  private static String copy(String dir) {
    return "COPY bundle/" + dir.replaceAll("/$", "") + " /" + dir;
  }

  private static List<Map<String, Object>> workloads() {
    List<Map<String, Object>> w = new ArrayList<>(Kustomize.build(REPO.resolve("config/manager")));
    w.addAll(Kustomize.build(REPO.resolve("config/agent")));
    return w.stream().filter(o -> Set.of("Deployment", "DaemonSet").contains(o.get("kind"))).toList();
  }

  private static List<String> descriptorPaths(Map<String, Object> owned) {
    List<String> paths = new ArrayList<>();
    Yaml.list(owned, "specDescriptors").forEach(d -> paths.add("spec." + d.get("path")));
    Yaml.list(owned, "statusDescriptors").forEach(d -> paths.add("status." + d.get("path")));
    return paths;
  }

  /** Whether a dotted path (spec.sources.podSelector) names a property of the CRD's storage schema. */
  @SuppressWarnings("unchecked")
  private static boolean schemaHas(Map<String, Object> crd, String path) {
    Map<String, Object> version = Yaml.list(Yaml.at(crd, "spec"), "versions").stream()
        .filter(v -> Boolean.TRUE.equals(v.get("storage"))).findFirst().orElseThrow();
    Map<String, Object> node = Yaml.at(version, "schema", "openAPIV3Schema");
    for (String key : path.split("\\.")) {
      Map<String, Object> properties = (Map<String, Object>) node.get("properties");
      if (properties == null || !properties.containsKey(key)) {
        return false;
      }
      node = (Map<String, Object>) properties.get(key);
    }
    return true;
  }
}
