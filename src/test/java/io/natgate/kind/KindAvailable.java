package io.natgate.kind;

import io.natgate.testing.Images;
import org.junit.jupiter.api.extension.ConditionEvaluationResult;
import org.junit.jupiter.api.extension.ExecutionCondition;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Runs the Kind tests when they can run here, and otherwise reports each skipped with the reason: turned off
 * (natgate.kind.skip, e.g. make test KIND_TESTS=off), no Docker engine, or the node image and images that make test /
 * make kind-test build when there is one not given.
 */
final class KindAvailable implements ExecutionCondition {
  private static volatile String why; // evaluated once: asking Docker takes a moment

  @Override
  public ConditionEvaluationResult evaluateExecutionCondition(ExtensionContext context) {
    if (why == null) {
      why = whyUnavailable();
    }
    return why.isEmpty() ? ConditionEvaluationResult.enabled("Docker and the images are here")
        : ConditionEvaluationResult.disabled(why);
  }

  private static String whyUnavailable() {
    String skip = System.getProperty("natgate.kind.skip", "");
    if (!skip.isEmpty()) {
      return skip + " (make test KIND_TESTS=auto, or make kind-test, runs them)";
    }
    String docker = Images.whyUnavailable();
    if (docker != null) {
      return docker;
    }
    String cluster = KindCluster.whyUnavailable();
    if (cluster != null) {
      return cluster;
    }
    String images = Images.whyUnavailable(Images.operator(), Images.agent(),
        System.getProperty("natgate.kind.test-image"));
    return images == null ? "" : images;
  }
}
