package io.natgate.packaging;

import io.natgate.Sha256;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/**
 * What OLM creates when it installs the bundle in {@code bundle/manifests} into a namespace, for a cluster without
 * OLM (pure; the Kind test applies the result): the bundle's other manifests (the CRDs, the operator's
 * NetworkPolicy), and from the CSV's deployment install strategy, as OLM's resolver and install strategy name them:
 * <ul>
 * <li>per service account of {@code permissions} and {@code clusterPermissions}, a ServiceAccount in the namespace;
 * <li>per {@code permissions} entry, a Role and a RoleBinding to that account named {@code <csv>-<account>-<hash>};
 * <li>per {@code clusterPermissions} entry, a ClusterRole and a ClusterRoleBinding named {@code <csv>-<hash>};
 * <li>per {@code deployments} entry, a Deployment of that name, labels and spec.
 * </ul>
 * Each generated Role, ClusterRole and binding carries OLM's owner labels ({@code olm.owner},
 * {@code olm.owner.namespace}, {@code olm.owner.kind}). The hash suffix is this class's own (OLM's hashes its Go
 * objects); names keep OLM's shape and 63-character limit. Not done: what OLM adds on top (owner references to
 * the CSV object, the {@code olm.*} annotations and {@code OPERATOR_CONDITION_NAME} in the pod template).
 */
public final class OlmInstall {
  static final int MAX_NAME = 63;
  private static final String CSV_SUFFIX = ".clusterserviceversion.yaml";

  private OlmInstall() {
  }

  /**
   * The objects, as one YAML stream for {@code kubectl apply}.
   *
   * @param images image replacements (the CSV's image to the one to run), for a cluster that has other images
   */
  public static String manifests(Path bundle, String namespace, Map<String, String> images) {
    List<Map<String, Object>> objects = new ArrayList<>();
    Map<String, Object> csv = null;
    for (Path file : files(bundle.resolve("manifests"))) {
      for (Map<String, Object> doc : Yaml.readAll(file)) {
        if ("ClusterServiceVersion".equals(doc.get("kind"))) {
          csv = doc;
        } else {
          objects.add(inNamespace(doc, namespace));
        }
      }
    }
    if (csv == null) {
      throw new IllegalArgumentException(bundle + "/manifests has no *" + CSV_SUFFIX);
    }
    objects.addAll(fromCsv(csv, namespace, images));
    return objects.stream().map(Yaml::write).reduce((a, b) -> a + "---\n" + b).orElse("");
  }

  /** The ServiceAccounts, RBAC and Deployments of the CSV's install strategy (see the class comment). */
  @SuppressWarnings("unchecked")
  static List<Map<String, Object>> fromCsv(Map<String, Object> csv, String namespace, Map<String, String> images) {
    String name = Yaml.string(csv, "metadata", "name");
    Map<String, Object> install = Yaml.at(csv, "spec", "install", "spec");
    Map<String, Object> owner = Yaml.map("olm.owner", name, "olm.owner.namespace", namespace,
        "olm.owner.kind", "ClusterServiceVersion");
    Set<String> accounts = new LinkedHashSet<>();
    List<Map<String, Object>> rbac = new ArrayList<>();
    for (Map<String, Object> p : Yaml.list(install, "permissions")) {
      String account = (String) p.get("serviceAccountName");
      accounts.add(account);
      String role = generatedName(name + "-" + account, name + "\n" + Yaml.json(p));
      rbac.add(Yaml.map("apiVersion", "rbac.authorization.k8s.io/v1", "kind", "Role", "metadata",
          Yaml.map("name", role, "namespace", namespace, "labels", owner), "rules", p.get("rules")));
      rbac.add(binding("RoleBinding", "Role", role, namespace, owner, account, namespace));
    }
    for (Map<String, Object> p : Yaml.list(install, "clusterPermissions")) {
      String account = (String) p.get("serviceAccountName");
      accounts.add(account);
      String role = generatedName(name, name + "\n" + namespace + "\n" + Yaml.json(p));
      rbac.add(Yaml.map("apiVersion", "rbac.authorization.k8s.io/v1", "kind", "ClusterRole", "metadata",
          Yaml.map("name", role, "labels", owner), "rules", p.get("rules")));
      rbac.add(binding("ClusterRoleBinding", "ClusterRole", role, null, owner, account, namespace));
    }
    List<Map<String, Object>> objects = new ArrayList<>();
    accounts.forEach(account -> objects.add(Yaml.map("apiVersion", "v1", "kind", "ServiceAccount", "metadata",
        Yaml.map("name", account, "namespace", namespace))));
    objects.addAll(rbac);
    for (Map<String, Object> d : Yaml.list(install, "deployments")) {
      Map<String, Object> metadata = Yaml.map("name", d.get("name"), "namespace", namespace);
      if (d.get("label") != null) {
        metadata.put("labels", d.get("label"));
      }
      objects.add(Yaml.map("apiVersion", "apps/v1", "kind", "Deployment", "metadata", metadata, "spec",
          withImages((Map<String, Object>) d.get("spec"), images)));
    }
    return objects;
  }

  /**
   * {@code base-hash}, the base cut so that the name stays within {@value #MAX_NAME} characters: the shape OLM's
   * resolver gives the RBAC it generates (its hash differs: see the class comment).
   */
  static String generatedName(String base, String hashed) {
    String hash = Sha256.hex(hashed, 4);
    return (base.length() + 1 + hash.length() > MAX_NAME ? base.substring(0, MAX_NAME - hash.length() - 1) : base)
        + "-" + hash;
  }

  private static Map<String, Object> binding(String kind, String roleKind, String role, String namespace,
      Map<String, Object> owner, String account, String accountNamespace) {
    Map<String, Object> metadata = Yaml.map("name", role);
    if (namespace != null) {
      metadata.put("namespace", namespace);
    }
    metadata.put("labels", owner);
    return Yaml.map("apiVersion", "rbac.authorization.k8s.io/v1", "kind", kind, "metadata", metadata,
        "roleRef", Yaml.map("apiGroup", "rbac.authorization.k8s.io", "kind", roleKind, "name", role),
        "subjects", List.of(Yaml.map("kind", "ServiceAccount", "name", account, "namespace", accountNamespace)));
  }

  /** A copy with every {@code image:} value that {@code images} names replaced. */
  @SuppressWarnings("unchecked")
  static <T> T withImages(T tree, Map<String, String> images) {
    if (tree instanceof Map<?, ?> m) {
      Map<String, Object> copy = new LinkedHashMap<>();
      m.forEach((k, v) -> copy.put((String) k, "image".equals(k) && v instanceof String s
          ? images.getOrDefault(s, s) : withImages(v, images)));
      return (T) copy;
    }
    if (tree instanceof List<?> l) {
      return (T) l.stream().map(v -> withImages(v, images)).toList();
    }
    return tree;
  }

  /** A namespaced manifest of the bundle goes into the install namespace, as OLM puts it (CRDs stay cluster-wide). */
  private static Map<String, Object> inNamespace(Map<String, Object> doc, String namespace) {
    if ("CustomResourceDefinition".equals(doc.get("kind"))) {
      return doc;
    }
    Map<String, Object> copy = new LinkedHashMap<>(doc);
    Map<String, Object> metadata = new LinkedHashMap<>(Yaml.at(doc, "metadata"));
    metadata.put("namespace", namespace);
    copy.put("metadata", metadata);
    return copy;
  }

  private static List<Path> files(Path dir) {
    try (Stream<Path> files = Files.list(dir)) {
      return files.filter(Files::isRegularFile).sorted().toList();
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(dir.toString(), e);
    }
  }
}
