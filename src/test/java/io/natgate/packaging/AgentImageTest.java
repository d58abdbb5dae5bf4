package io.natgate.packaging;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.natgate.dataplane.Kernel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/** The agent image installs every tool the agent may run (Kernel.TOOLS), and the agent runs no other. */
class AgentImageTest {
  static final Path DOCKERFILE = Path.of("src/main/docker/Dockerfile.agent");

  @Test
  void theAgentImageInstallsThePackageOfEveryTool() throws IOException {
    assertThat(aptPackages(Files.readString(DOCKERFILE))).as("packages installed by %s", DOCKERFILE)
        .containsAll(Set.copyOf(Kernel.TOOLS.values()));
  }

  @Test
  void theAgentRefusesToRunAToolItsImageMayLack() {
    assertThatThrownBy(() -> new Kernel(List.of()).run(null, "nft", "list", "ruleset"))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("nft is not in Kernel.TOOLS");
    assertThatThrownBy(() -> new Kernel(List.of()).start("ping", "192.0.2.1"))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("ping is not in Kernel.TOOLS");
  }

  @Test
  void aptPackagesAreReadAcrossContinuationLinesAndWithoutOptions() {
    assertThat(aptPackages("RUN apt-get update \\\n && apt-get install -y --no-install-recommends a b \\\n c \\\n"
        + " && rm -rf x\nRUN apt-get install -y d")).containsExactlyInAnyOrder("a", "b", "c", "d");
  }

  /** The package names of every {@code apt-get install} in a Dockerfile. */
  static Set<String> aptPackages(String dockerfile) {
    String joined = dockerfile.replaceAll("\\\\\\n", " ");
    var m = Pattern.compile("apt-get install([^&\\n]*)").matcher(joined);
    return m.results().flatMap(r -> Arrays.stream(r.group(1).trim().split("\\s+")))
        .filter(w -> !w.isEmpty() && !w.startsWith("-")).collect(Collectors.toSet());
  }
}
