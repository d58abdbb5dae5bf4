package io.natgate.api;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The CRDs committed under crds/ are exactly what the build generates from the api classes. */
class CrdDriftTest {
  @ParameterizedTest
  @ValueSource(strings = {"egressgateways.natgate.io-v1.yml", "egressnodestates.natgate.io-v1.yml"})
  void committedCrdMatchesTheBuild(String file) throws IOException {
    Path generated = Path.of("target/classes/META-INF/fabric8", file);
    Path committed = Path.of("crds", file);
    assertThat(Files.readString(committed))
        .as("crds/%s differs from the build: run `make crds` and commit the result", file)
        .isEqualTo(Files.readString(generated));
  }
}
