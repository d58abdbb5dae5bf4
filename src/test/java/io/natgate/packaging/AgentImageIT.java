package io.natgate.packaging;

import static org.assertj.core.api.Assertions.assertThat;

import io.natgate.dataplane.Kernel;
import io.natgate.testing.Images;
import java.time.Duration;
import java.util.TreeSet;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.containers.startupcheck.OneShotStartupCheckStrategy;

/** The built agent image (the one make test builds, else make docker-build's) has every tool the agent may run. */
class AgentImageIT {
  @Test
  void everyToolTheAgentRunsIsInTheAgentImage() {
    String image = Images.agent();
    String why = Images.whyUnavailable(image);
    Assumptions.assumeTrue(why == null, why);
    String script = "for t in " + String.join(" ", new TreeSet<>(Kernel.TOOLS.keySet()))
        + "; do command -v \"$t\" >/dev/null || echo \"missing: $t\"; done; echo checked";
    try (var container = new GenericContainer<>(image)
        .withCreateContainerCmdModifier(c -> c.withEntrypoint("sh"))
        .withCommand("-c", script)
        .withStartupCheckStrategy(new OneShotStartupCheckStrategy().withTimeout(Duration.ofMinutes(1)))) {
      container.start();
      String out = container.getLogs();
      assertThat(out).as("tools in %s", image).contains("checked").doesNotContain("missing");
    }
  }
}
