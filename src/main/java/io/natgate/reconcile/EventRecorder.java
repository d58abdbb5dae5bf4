package io.natgate.reconcile;

import io.fabric8.kubernetes.api.model.EventBuilder;
import io.fabric8.kubernetes.api.model.ObjectReferenceBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.natgate.api.v1alpha1.EgressGateway;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import org.jboss.logging.Logger;

/** Kubernetes Events about a gateway, for `kubectl describe egw` and the on-call person. */
final class EventRecorder {
  private static final Logger LOG = Logger.getLogger(EventRecorder.class);

  private final KubernetesClient client;
  private final String namespace;

  EventRecorder(KubernetesClient client, String namespace) {
    this.client = client;
    this.namespace = namespace;
  }

  void normal(EgressGateway gateway, String reason, String message) {
    record(gateway, "Normal", reason, message);
  }

  void warning(EgressGateway gateway, String reason, String message) {
    record(gateway, "Warning", reason, message);
  }

  private void record(EgressGateway gateway, String type, String reason, String message) {
    LOG.infof("gateway %s: %s %s: %s", gateway.getMetadata().getName(), type, reason, message);
    String now = Instant.now().truncatedTo(ChronoUnit.SECONDS).toString();
    var event = new EventBuilder()
        .withNewMetadata().withGenerateName(gateway.getMetadata().getName() + ".").withNamespace(namespace).endMetadata()
        .withInvolvedObject(new ObjectReferenceBuilder().withApiVersion(gateway.getApiVersion())
            .withKind(gateway.getKind()).withName(gateway.getMetadata().getName())
            .withUid(gateway.getMetadata().getUid()).withResourceVersion(gateway.getMetadata().getResourceVersion())
            .build())
        .withType(type).withReason(reason).withMessage(message)
        .withFirstTimestamp(now).withLastTimestamp(now).withCount(1)
        .withNewSource().withComponent("natgate-operator").endSource()
        .withReportingComponent("natgate.io/operator").withReportingInstance("natgate-operator")
        .build();
    try {
      client.v1().events().inNamespace(namespace).resource(event).create();
    } catch (KubernetesClientException e) {
      // An Event is a courtesy: losing one must not fail the reconcile that decided it.
      LOG.warnf("could not record event %s for %s: %s", reason, gateway.getMetadata().getName(), e.getMessage());
    }
  }
}
