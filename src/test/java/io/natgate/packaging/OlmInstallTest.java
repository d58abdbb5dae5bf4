package io.natgate.packaging;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/** The objects the Kind test installs in OLM's place, from the committed bundle. */
class OlmInstallTest {
  private static final Path BUNDLE = Path.of("bundle");
  private static final String NS = "natgate-system";
  private static final String OPERATOR_IMAGE = "quay.io/natgate/natgate-operator:0.1.0";

  private final Map<String, Object> csv = Yaml.readOne(BUNDLE.resolve("manifests/natgate.clusterserviceversion.yaml"));
  private final Map<String, Object> strategy = Yaml.at(csv, "spec", "install", "spec");
  private final List<Map<String, Object>> objects = Yaml.readAll(OlmInstall.manifests(BUNDLE, NS,
      Map.of(OPERATOR_IMAGE, "natgate.local/natgate-operator:kind-test")));

  @Test
  void eachPermissionIsARoleBoundToItsAccountNamedAsOlmNamesIt() {
    List<Map<String, Object>> permissions = Yaml.list(strategy, "permissions");
    List<Map<String, Object>> roles = ofKind("Role");
    assertThat(roles).hasSameSizeAs(permissions);
    for (int i = 0; i < permissions.size(); i++) {
      String account = (String) permissions.get(i).get("serviceAccountName");
      Map<String, Object> role = roles.get(i);
      String name = Yaml.string(role, "metadata", "name");
      assertThat(name).matches("natgate\\.v0\\.1\\.0-" + account + "-[0-9a-f]{8}");
      assertThat(role.get("rules")).isEqualTo(permissions.get(i).get("rules"));
      assertThat(Yaml.string(role, "metadata", "namespace")).isEqualTo(NS);
      assertThat(Yaml.at(role, "metadata", "labels")).containsEntry("olm.owner", "natgate.v0.1.0")
          .containsEntry("olm.owner.namespace", NS).containsEntry("olm.owner.kind", "ClusterServiceVersion");
      assertThat(bindingOf("RoleBinding", name)).isEqualTo(List.of("Role", name, account, NS));
    }
  }

  @Test
  void eachClusterPermissionIsAClusterRoleBoundToItsAccount() {
    List<Map<String, Object>> permissions = Yaml.list(strategy, "clusterPermissions");
    List<Map<String, Object>> roles = ofKind("ClusterRole");
    assertThat(roles).hasSameSizeAs(permissions);
    for (int i = 0; i < permissions.size(); i++) {
      String name = Yaml.string(roles.get(i), "metadata", "name");
      assertThat(name).matches("natgate\\.v0\\.1\\.0-[0-9a-f]{8}");
      assertThat(roles.get(i).get("rules")).isEqualTo(permissions.get(i).get("rules"));
      assertThat(bindingOf("ClusterRoleBinding", name)).isEqualTo(List.of("ClusterRole", name,
          permissions.get(i).get("serviceAccountName"), NS));
    }
    assertThat(roles.stream().map(r -> Yaml.string(r, "metadata", "name")).distinct()).hasSameSizeAs(roles);
  }

  @Test
  void oneServiceAccountPerAccountTheCsvNames() {
    assertThat(ofKind("ServiceAccount").stream().map(a -> Yaml.string(a, "metadata", "name") + " in "
        + Yaml.string(a, "metadata", "namespace"))).containsExactly("natgate-agent in " + NS,
            "natgate-operator in " + NS);
  }

  @Test
  void theDeploymentIsTheStrategysWithTheImageReplaced() {
    Map<String, Object> declared = Yaml.list(strategy, "deployments").get(0);
    List<Map<String, Object>> deployments = ofKind("Deployment");
    assertThat(deployments).hasSize(1);
    Map<String, Object> d = deployments.get(0);
    assertThat(Yaml.string(d, "metadata", "name")).isEqualTo(declared.get("name"));
    assertThat(Yaml.at(d, "metadata", "labels")).isEqualTo(declared.get("label"));
    assertThat(Yaml.write(d.get("spec"))).isEqualTo(Yaml.write(declared.get("spec"))
        .replace(OPERATOR_IMAGE, "natgate.local/natgate-operator:kind-test")).doesNotContain(OPERATOR_IMAGE);
  }

  @Test
  void theBundlesOtherManifestsComeAlongTheNamespacedOnesInTheNamespace() {
    assertThat(ofKind("CustomResourceDefinition").stream().map(c -> Yaml.string(c, "metadata", "name")))
        .containsExactlyInAnyOrder("egressgateways.natgate.io", "egressnodestates.natgate.io");
    assertThat(ofKind("NetworkPolicy")).singleElement()
        .satisfies(p -> assertThat(Yaml.string(p, "metadata", "namespace")).isEqualTo(NS));
    assertThat(ofKind("ClusterServiceVersion")).isEmpty();
  }

  @Test
  void aLongBaseIsCutSoThatTheNameKeepsOlmsLimit() {
    String name = OlmInstall.generatedName("x".repeat(70), "rules");
    assertThat(name).hasSize(OlmInstall.MAX_NAME).matches("x{54}-[0-9a-f]{8}");
    assertThat(OlmInstall.generatedName("short", "rules")).isEqualTo("short-" + name.substring(55))
        .isNotEqualTo(OlmInstall.generatedName("short", "other rules"));
  }

  private List<Map<String, Object>> ofKind(String kind) {
    return objects.stream().filter(o -> kind.equals(o.get("kind"))).collect(Collectors.toList());
  }

  /** roleRef kind and name, the subject's name and namespace of the binding of that name. */
  private List<Object> bindingOf(String kind, String name) {
    Map<String, Object> b = ofKind(kind).stream().filter(x -> name.equals(Yaml.string(x, "metadata", "name")))
        .findFirst().orElseThrow();
    Map<String, Object> subject = Yaml.list(b, "subjects").get(0);
    return List.of(Yaml.string(b, "roleRef", "kind"), Yaml.string(b, "roleRef", "name"), subject.get("name"),
        subject.get("namespace"));
  }
}
