package io.natgate.reconcile;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.natgate.config.OperatorBeans;
import io.natgate.testing.ControlPlane;
import io.natgate.testing.ControlPlaneExtension;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** The packaged operator as its own process, as its ServiceAccount: health goes UP and it takes the leader Lease. */
@ExtendWith(ControlPlaneExtension.class)
class OperatorProcessIT {
  @Test
  void becomesReadyAndTakesTheLeaderLease(ControlPlane controlPlane) throws Exception {
    Path jar = ControlPlane.repo().resolve("target/quarkus-app/quarkus-run.jar");
    assertThat(jar).as("packaged operator (mvn package)").exists();
    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    Path kubeconfig = controlPlane.kubeconfigFor(ControlPlane.OPERATOR_NAMESPACE, ControlPlane.OPERATOR_SERVICE_ACCOUNT);
    var builder = new ProcessBuilder("java", "-Dquarkus.http.port=" + port,
        "-Dnatgate.leader-election.namespace=" + ControlPlane.OPERATOR_NAMESPACE, "-jar", jar.toString()).inheritIO();
    builder.environment().put("KUBECONFIG", kubeconfig.toString());
    Process operator = builder.start();
    try {
      await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(500)).ignoreExceptions()
          .until(() -> status(port, "/q/health/ready") == 200);
      assertThat(status(port, "/q/health/live")).isEqualTo(200);
      var leases = controlPlane.admin().leases().inNamespace(ControlPlane.OPERATOR_NAMESPACE);
      var taken = await().atMost(Duration.ofSeconds(30)).until(() -> leases.withName(OperatorBeans.LEASE_NAME).get(),
          l -> l != null && operator.isAlive());
      // And keeps it: a leader that cannot renew (RBAC) loses the Lease and stops after its duration.
      await().atMost(Duration.ofSeconds(30)).until(() -> leases.withName(OperatorBeans.LEASE_NAME).get().getSpec()
          .getRenewTime().isAfter(taken.getSpec().getRenewTime()));
      assertThat(operator.isAlive()).isTrue();
    } finally {
      operator.destroy();
      if (!operator.waitFor(10, java.util.concurrent.TimeUnit.SECONDS)) {
        operator.destroyForcibly().waitFor();
      }
      Files.deleteIfExists(kubeconfig);
    }
  }

  private static int status(int port, String path) throws Exception {
    return HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
        .build(), HttpResponse.BodyHandlers.discarding()).statusCode();
  }
}
