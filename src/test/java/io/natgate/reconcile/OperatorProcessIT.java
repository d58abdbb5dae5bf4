package io.natgate.reconcile;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.fabric8.kubernetes.api.model.coordination.v1.Lease;
import io.fabric8.kubernetes.client.dsl.Resource;
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
import java.time.ZonedDateTime;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The packaged operator as its own process, as its ServiceAccount: health goes UP, it takes the leader Lease, and on
 * SIGTERM (a rolling update) it gives the Lease up and exits, so that its replacement need not wait the Lease out. A
 * leader whose Lease someone else took exits (its Deployment starts it again, a follower then).
 */
@ExtendWith(ControlPlaneExtension.class)
class OperatorProcessIT {
  @Test
  void becomesReadyTakesTheLeaderLeaseAndGivesItUpOnSigterm(ControlPlane controlPlane) throws Exception {
    try (var leader = Leader.start(controlPlane)) {
      // And keeps it: a leader that cannot renew (RBAC) loses the Lease and stops after its duration.
      await().atMost(Duration.ofSeconds(30)).until(() -> leader.lease().get().getSpec().getRenewTime()
          .isAfter(leader.taken().getSpec().getRenewTime()));
      assertThat(leader.process().isAlive()).isTrue();

      leader.process().destroy(); // SIGTERM
      // A generous bound for "it ends at all": it once hung for ever, stopping to lead inside its shutdown.
      assertThat(leader.process().waitFor(30, TimeUnit.SECONDS)).as("exited after SIGTERM").isTrue();
      assertThat(leader.lease().get().getSpec().getHolderIdentity()).as("the Lease's holder once the leader stopped")
          .isNullOrEmpty();
    }
  }

  @Test
  void aLeaderWhoseLeaseSomeoneElseTookExits(ControlPlane controlPlane) throws Exception {
    try (var leader = Leader.start(controlPlane)) {
      leader.lease().edit(l -> {
        l.getSpec().setHolderIdentity("another-operator");
        l.getSpec().setRenewTime(ZonedDateTime.now());
        l.getSpec().setLeaseDurationSeconds(300);
        return l;
      });
      // It cannot renew for its renew deadline (10 s), then stops leading: no second reconciler.
      assertThat(leader.process().waitFor(90, TimeUnit.SECONDS)).as("exited once it could not renew").isTrue();
      assertThat(leader.process().exitValue()).as("exit code: a failure, for the kubelet to restart it").isEqualTo(1);
      assertThat(leader.lease().get().getSpec().getHolderIdentity()).isEqualTo("another-operator");
    }
  }

  /** An operator process that became ready and took the leader Lease. */
  record Leader(Process process, Path kubeconfig, Resource<Lease> lease, Lease taken) implements AutoCloseable {
    static Leader start(ControlPlane controlPlane) throws Exception {
      Path jar = ControlPlane.repo().resolve("target/quarkus-app/quarkus-run.jar");
      assertThat(jar).as("packaged operator (mvn package)").exists();
      int port;
      try (ServerSocket s = new ServerSocket(0)) {
        port = s.getLocalPort();
      }
      Path kubeconfig = controlPlane.kubeconfigFor(ControlPlane.OPERATOR_NAMESPACE,
          ControlPlane.OPERATOR_SERVICE_ACCOUNT);
      var builder = new ProcessBuilder("java", "-Dquarkus.http.port=" + port,
          "-Dnatgate.leader-election.namespace=" + ControlPlane.OPERATOR_NAMESPACE, "-jar", jar.toString()).inheritIO();
      builder.environment().put("KUBECONFIG", kubeconfig.toString());
      Process operator = builder.start();
      var lease = controlPlane.admin().leases().inNamespace(ControlPlane.OPERATOR_NAMESPACE)
          .withName(OperatorBeans.LEASE_NAME);
      var leader = new Leader(operator, kubeconfig, lease, null);
      try {
        await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(500)).ignoreExceptions()
            .until(() -> status(port, "/q/health/ready") == 200);
        assertThat(status(port, "/q/health/live")).isEqualTo(200);
        var taken = await().atMost(Duration.ofSeconds(30)).until(lease::get, l -> l != null && operator.isAlive()
            && l.getSpec().getHolderIdentity() != null && !l.getSpec().getHolderIdentity().isEmpty());
        return new Leader(operator, kubeconfig, lease, taken);
      } catch (Exception | AssertionError e) {
        leader.close();
        throw e;
      }
    }

    @Override
    public void close() throws Exception {
      process.destroy();
      if (!process.waitFor(10, TimeUnit.SECONDS)) {
        process.destroyForcibly().waitFor();
      }
      Files.deleteIfExists(kubeconfig);
    }
  }

  private static int status(int port, String path) throws Exception {
    return HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
        .build(), HttpResponse.BodyHandlers.discarding()).statusCode();
  }
}
