package io.natgate.testing;

import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.javaoperatorsdk.operator.Operator;
import io.javaoperatorsdk.operator.api.monitoring.Metrics;
import io.natgate.reconcile.EgressGatewayReconciler;
import io.natgate.reconcile.OperatorSettings;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The operator's reconciler run in-process by the operator SDK, authenticated as the operator's ServiceAccount
 * (the same reconciler the application registers; leader election is off here: there is one instance).
 */
public final class OperatorRunner implements AutoCloseable {
  private final KubernetesClient client;
  private final Operator operator;
  private final AtomicInteger reconciles = new AtomicInteger();
  private final AtomicInteger failures = new AtomicInteger();

  public OperatorRunner(ControlPlane controlPlane) {
    client = controlPlane.operatorClient();
    Metrics counting = new Metrics() {
      @Override
      public void reconciliationExecutionFinished(HasMetadata resource, Map<String, Object> metadata) {
        reconciles.incrementAndGet();
      }

      @Override
      public void failedReconciliation(HasMetadata resource, Exception exception, Map<String, Object> metadata) {
        // 404 (deleted while its last event was handled) and 409 (changed meanwhile) are retried by design.
        if (!(exception instanceof KubernetesClientException k && (k.getCode() == 404 || k.getCode() == 409))) {
          failures.incrementAndGet();
        }
      }
    };
    operator = new Operator(o -> o.withKubernetesClient(client).withCloseClientOnStop(false)
        .withStopOnInformerErrorDuringStartup(true).withMetrics(counting));
    // Agents in this JVM cannot send peer heartbeats on the lab's network, and the IT's agents are only Leases.
    operator.register(new EgressGatewayReconciler(OperatorSettings.defaults().withoutPeerGroups()));
    operator.start();
  }

  /** Reconciliations finished since start. */
  public int reconciles() {
    return reconciles.get();
  }

  /** Reconciliations that threw, but for 404/409 races (a missing RBAC permission shows up here as 403). */
  public int failures() {
    return failures.get();
  }

  @Override
  public void close() {
    operator.stop();
    client.close();
  }
}
