package io.natgate.testing;

import java.io.IOException;
import java.nio.file.Files;
import java.util.regex.Pattern;
import org.testcontainers.DockerClientFactory;

/** The images the manifests name, and whether the local Docker engine has them (built by make docker-build). */
public final class Images {
  private Images() {
  }

  /** The first image a manifest of the repository names, e.g. config/agent/daemonset.yaml. */
  public static String of(String manifest) {
    try {
      var m = Pattern.compile("image:\\s*(\\S+)").matcher(Files.readString(ControlPlane.repo().resolve(manifest)));
      if (!m.find()) {
        throw new IllegalStateException("no image in " + manifest);
      }
      return m.group(1);
    } catch (IOException e) {
      throw new IllegalStateException(manifest + ": " + e.getMessage(), e);
    }
  }

  /** The operator image tests run: natgate.kind.operator-image (the one make test builds first), else the manifest's. */
  public static String operator() {
    return System.getProperty("natgate.kind.operator-image", of("config/manager/manager.yaml"));
  }

  /** The agent image tests run: natgate.kind.agent-image (the one make test builds first), else the manifest's. */
  public static String agent() {
    return System.getProperty("natgate.kind.agent-image", of("config/agent/daemonset.yaml"));
  }

  /** Why a test that needs these local images cannot run, or null when Docker is there and has them all. */
  public static String whyUnavailable(String... images) {
    if (!DockerClientFactory.instance().isDockerAvailable()) {
      return "no Docker engine reachable (src/tools/docker/ensure-docker.sh starts one)";
    }
    for (String image : images) {
      try {
        DockerClientFactory.instance().client().inspectImageCmd(image).exec();
      } catch (com.github.dockerjava.api.exception.NotFoundException e) {
        return "image " + image + " not built (make docker-build, or make docker-build-local without a registry)";
      }
    }
    return null;
  }
}
