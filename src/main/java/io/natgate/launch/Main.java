package io.natgate.launch;

import io.quarkus.runtime.Quarkus;
import io.quarkus.runtime.annotations.QuarkusMain;

/**
 * The one entry point ({@code java -jar quarkus-run.jar}) of both modes. The operator runs on Quarkus; the node agent
 * ({@code natgate.mode=agent}, which {@code QUARKUS_PROFILE=agent} sets) starts without it, before Quarkus would boot:
 * on every node, Quarkus's runtime, Vert.x and Netty cost memory and start-up time for a health port and a watch
 * (docs/benchmarks.md, "An agent without the Quarkus runtime").
 */
@QuarkusMain
public final class Main {
  private Main() {
  }

  public static void main(String[] args) {
    var config = AgentProcess.config();
    if (AgentProcess.agentMode(config)) {
      AgentProcess.run(config);
    } else {
      Quarkus.run(args);
    }
  }
}
