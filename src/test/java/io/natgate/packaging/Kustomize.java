package io.natgate.packaging;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Builds a kustomize base from its {@code resources:} list, the only kustomize feature config/ uses, so that
 * the bundle is generated (and checked) without a kustomize binary. Anything else in a kustomization.yaml
 * (patches, name prefixes, images...) is refused rather than silently ignored; InstallIT checks that
 * {@code kubectl kustomize} agrees.
 */
final class Kustomize {
  private Kustomize() {
  }

  static List<Map<String, Object>> build(Path dir) {
    Path file = dir.resolve("kustomization.yaml");
    Map<String, Object> kustomization = Yaml.readOne(file);
    if (!Set.of("resources").containsAll(kustomization.keySet())) {
      throw new IllegalArgumentException(file + ": only `resources:` is supported by the bundle generator, found "
          + kustomization.keySet());
    }
    List<Map<String, Object>> objects = new ArrayList<>();
    for (Object entry : (List<?>) kustomization.get("resources")) {
      Path resource = dir.resolve((String) entry).normalize();
      objects.addAll(Files.isDirectory(resource) ? build(resource) : Yaml.readAll(resource));
    }
    return objects;
  }

  /** The resource files a base lists directly (not those of the bases it includes). */
  static List<Path> files(Path dir) {
    return ((List<?>) Yaml.readOne(dir.resolve("kustomization.yaml")).get("resources")).stream()
        .map(e -> dir.resolve((String) e).normalize()).filter(Files::isRegularFile).toList();
  }
}
