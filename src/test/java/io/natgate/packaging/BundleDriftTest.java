package io.natgate.packaging;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/** The committed bundle/ and bundle.Dockerfile are exactly what `make bundle` generates from config/ and crds/. */
class BundleDriftTest {
  private static final Path REPO = Path.of(".");

  @Test
  void committedBundleMatchesTheGenerator() throws IOException {
    Map<String, String> generated = BundleGenerator.generate(REPO);
    for (var file : generated.entrySet()) {
      Path committed = REPO.resolve(file.getKey());
      assertThat(committed).as("%s: run `make bundle` and commit the result", file.getKey()).exists();
      assertThat(Files.readString(committed)).as("%s differs: run `make bundle` and commit the result", file.getKey())
          .isEqualTo(file.getValue());
    }
    try (Stream<Path> files = Files.walk(REPO.resolve("bundle"))) {
      assertThat(files.filter(Files::isRegularFile).map(f -> REPO.relativize(f).toString().replace('\\', '/')))
          .as("files in bundle/ that `make bundle` no longer generates")
          .allMatch(generated::containsKey);
    }
  }
}
