package io.natgate.config;

import io.fabric8.kubernetes.api.model.coordination.v1.Lease;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.quarkus.runtime.Quarkus;
import jakarta.inject.Singleton;
import java.util.Objects;
import java.util.UUID;
import org.jboss.logging.Logger;

/**
 * The operator's side of its leader Lease, beyond what the operator SDK does (it takes and renews it):
 * <ul>
 *   <li>Losing the Lease ends the process through Quarkus's own exit: a replica that is not the leader must not
 *       reconcile. The SDK's answer, {@code System.exit} from its callback, hung the process when the stop was ours:
 *       the SDK stops leading inside Quarkus's shutdown, which that {@code System.exit} then waits for (a SIGTERM'd
 *       operator lived on until its SIGKILL).
 *   <li>On a stop it gives the Lease up once the SDK stopped leading (its reconciler stopped, its client still
 *       open), as Kubernetes' own controllers do: the SDK does not, and a replacement (a rolling update) would wait
 *       the Lease's duration out before reconciling.
 * </ul>
 */
@Singleton
public class LeaderLease {
  public static final String NAME = "natgate-operator-leader";
  private static final Logger LOG = Logger.getLogger(LeaderLease.class);
  /** Unique per process: a replacement in a Pod of the same name must not count as this one. */
  private final String identity = Objects.requireNonNullElse(System.getenv("HOSTNAME"), "natgate-operator") + "_"
      + UUID.randomUUID();
  private final KubernetesClient client;
  private final String namespace;
  private volatile boolean stopping;

  LeaderLease(KubernetesClient client, NatgateConfig config) {
    this.client = client;
    this.namespace = config.leaderElection().namespace().orElseGet(client::getNamespace);
  }

  String identity() {
    return identity;
  }

  /** Called by the operator SDK whenever this process stops leading. */
  void stoppedLeading() {
    if (stopping) {
      giveUp();
      return;
    }
    LOG.error("lost the leader Lease: exiting, so that only the leader reconciles");
    Quarkus.asyncExit(1);
  }

  /** The operator is stopping: stopping to lead is expected from now on. */
  void stopping() {
    stopping = true;
  }

  /** Empties the Lease if this process still holds it (an update of the version read: never someone else's). */
  private void giveUp() {
    try {
      Lease lease = client.leases().inNamespace(namespace).withName(NAME).get();
      if (lease == null || lease.getSpec() == null || !identity.equals(lease.getSpec().getHolderIdentity())) {
        return;
      }
      lease.getSpec().setHolderIdentity(null);
      lease.getSpec().setLeaseDurationSeconds(1);
      client.resource(lease).update();
      LOG.info("gave the leader Lease up");
    } catch (KubernetesClientException e) {
      LOG.warnf("could not give the leader Lease up (a replacement waits for it to expire): %s", e.getMessage());
    }
  }
}
