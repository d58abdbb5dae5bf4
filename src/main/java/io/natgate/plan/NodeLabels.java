package io.natgate.plan;

import io.fabric8.kubernetes.api.model.Node;
import io.natgate.api.v1alpha1.EgressGateway;
import java.util.Collection;

/** The natgate.io/gateway label a node should carry. */
public final class NodeLabels {
  public static final String GATEWAY = "natgate.io/gateway";

  private NodeLabels() {
  }

  /**
   * The oldest live gateway whose nodeSelector matches the node, or null. A label has one value, so a node shared
   * by two gateways carries the older one's name (it still serves both).
   */
  public static String desiredGateway(Node node, Collection<EgressGateway> liveGateways) {
    return liveGateways.stream()
        .filter(g -> LabelSelectors.matches(g.getSpec().nodeSelector, node.getMetadata().getLabels()))
        .min(ClusterSnapshot.SENIORITY).map(g -> g.getMetadata().getName()).orElse(null);
  }

  public static String currentGateway(Node node) {
    var labels = node.getMetadata().getLabels();
    return labels == null ? null : labels.get(GATEWAY);
  }
}
