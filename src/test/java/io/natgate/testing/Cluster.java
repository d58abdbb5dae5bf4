package io.natgate.testing;

import io.fabric8.kubernetes.api.model.NamespaceBuilder;
import io.fabric8.kubernetes.api.model.Node;
import io.fabric8.kubernetes.api.model.NodeBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import java.time.Instant;
import java.util.Map;

/** Writes Nodes, Namespaces and Pods the way a kubelet and a user would, for tests with no kubelet. */
public final class Cluster {
  private final KubernetesClient admin;

  public Cluster(KubernetesClient admin) {
    this.admin = admin;
  }

  public Node node(String name, String internalIP, Map<String, String> labels) {
    admin.nodes().resource(new NodeBuilder().withNewMetadata().withName(name).withLabels(labels).endMetadata()
        .withNewSpec().endSpec().build()).create();
    return setReady(name, internalIP, true);
  }

  /** The status a kubelet reports: Ready (or not) and the node's InternalIP. */
  public Node setReady(String name, String internalIP, boolean ready) {
    Node node = admin.nodes().withName(name).get();
    node.setStatus(new io.fabric8.kubernetes.api.model.NodeStatusBuilder()
        .addNewCondition().withType("Ready").withStatus(ready ? "True" : "False")
        .withReason(ready ? "KubeletReady" : "NodeStatusUnknown")
        .withLastHeartbeatTime(Instant.now().toString()).withLastTransitionTime(Instant.now().toString()).endCondition()
        .addNewAddress().withType("InternalIP").withAddress(internalIP).endAddress()
        .build());
    return admin.nodes().resource(node).updateStatus();
  }

  public void labelNode(String name, String key, String value) {
    admin.nodes().withName(name).edit(n -> {
      if (value == null) {
        n.getMetadata().getLabels().remove(key);
      } else {
        n.getMetadata().getLabels().put(key, value);
      }
      return n;
    });
  }

  public void namespace(String name, Map<String, String> labels) {
    admin.namespaces().resource(new NamespaceBuilder().withNewMetadata().withName(name).withLabels(labels)
        .endMetadata().build()).serverSideApply();
  }

  /** A scheduled, running pod with an IP, as the kubelet would report it. */
  public Pod runningPod(String namespace, String name, String node, String podIP, Map<String, String> labels) {
    admin.pods().inNamespace(namespace).resource(new PodBuilder().withNewMetadata().withName(name)
        .withNamespace(namespace).withLabels(labels).endMetadata()
        .withNewSpec().withNodeName(node).addNewContainer().withName("app").withImage("example.invalid/app:1")
        .endContainer().endSpec().build()).create();
    Pod pod = admin.pods().inNamespace(namespace).withName(name).get();
    pod.setStatus(new io.fabric8.kubernetes.api.model.PodStatusBuilder().withPhase("Running").withPodIP(podIP)
        .addNewPodIP(podIP).build());
    return admin.pods().inNamespace(namespace).resource(pod).updateStatus();
  }

  public void deletePod(String namespace, String name) {
    admin.pods().inNamespace(namespace).withName(name).withGracePeriod(0).delete();
  }
}
