package io.natgate.plan;

import io.fabric8.kubernetes.api.model.LabelSelectorBuilder;
import io.fabric8.kubernetes.api.model.Node;
import io.fabric8.kubernetes.api.model.NodeBuilder;
import io.fabric8.kubernetes.api.model.ObjectMetaBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.EgressGatewaySpec;
import io.natgate.api.v1alpha1.Sources;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** Plain objects for the pure planning tests. */
public final class Fixtures {
  private Fixtures() {
  }

  public static Node node(String name, String ip, boolean ready, Map<String, String> labels) {
    return new NodeBuilder().withNewMetadata().withName(name).withLabels(labels).endMetadata()
        .withNewStatus().addNewCondition().withType("Ready").withStatus(ready ? "True" : "False").endCondition()
        .addNewAddress().withType("InternalIP").withAddress(ip).endAddress().endStatus().build();
  }

  public static Node egressNode(String name, String ip, boolean ready) {
    return node(name, ip, ready, Map.of("role", "egress"));
  }

  public static Pod pod(String namespace, String name, String node, String ip, String phase, Map<String, String> labels) {
    return new PodBuilder().withNewMetadata().withNamespace(namespace).withName(name).withLabels(labels).endMetadata()
        .withNewSpec().withNodeName(node).endSpec()
        .withNewStatus().withPhase(phase).withPodIP(ip).endStatus().build();
  }

  public static EgressGateway gateway(String name, String created, String... ips) {
    EgressGateway g = new EgressGateway();
    g.setMetadata(new ObjectMetaBuilder().withName(name).withCreationTimestamp(created).withGeneration(1L).build());
    g.setSpec(new EgressGatewaySpec());
    g.getSpec().nodeSelector = new LabelSelectorBuilder().withMatchLabels(Map.of("role", "egress")).build();
    g.getSpec().egressIPs = new ArrayList<>(List.of(ips));
    g.getSpec().sources = new Sources(new LabelSelectorBuilder().withMatchLabels(Map.of("team", "pay")).build(), null);
    return g;
  }

  public static ClusterSnapshot cluster(Collection<Node> nodes, Collection<Pod> pods, Collection<EgressGateway> gateways) {
    Map<String, Node> byName = new HashMap<>();
    nodes.forEach(n -> byName.put(n.getMetadata().getName(), n));
    return new ClusterSnapshot(byName, pods, Map.of("pay", Map.of("team", "pay"), "ops", Map.of("team", "ops")),
        gateways, List.of("10.96.0.0/12"), byName.keySet());
  }
}
