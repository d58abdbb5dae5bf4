package io.natgate.testing;

import io.fabric8.kubernetes.api.model.NamespaceBuilder;
import io.fabric8.kubernetes.api.model.Node;
import io.fabric8.kubernetes.api.model.NodeBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.natgate.Defaults;
import io.natgate.agent.Heartbeat;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.Map;

/**
 * Writes Nodes, Namespaces and Pods the way a kubelet and a user would, for tests with no kubelet, and renews each
 * node's agent Lease with the agent's own {@link Heartbeat} (no data plane), as a running agent would.
 */
public final class Cluster implements AutoCloseable {
  private final KubernetesClient admin;
  private final Map<String, Heartbeat> agents = new ConcurrentHashMap<>();
  private final Duration heartbeatTimeout;

  /** Agents with the default heartbeat ({@link Defaults}). */
  public Cluster(KubernetesClient admin) {
    this(admin, Defaults.heartbeatTimeout());
  }

  /** Agents that renew as often as the default and fence after two thirds of {@code heartbeatTimeout}. */
  public Cluster(KubernetesClient admin, Duration heartbeatTimeout) {
    this.admin = admin;
    this.heartbeatTimeout = heartbeatTimeout;
  }

  public Node node(String name, String internalIP, Map<String, String> labels) {
    admin.nodes().resource(new NodeBuilder().withNewMetadata().withName(name).withLabels(labels).endMetadata()
        .withNewSpec().endSpec().build()).create();
    return setReady(name, internalIP, true);
  }

  /** Renews the node's agent Lease from now on, as a running agent would (no data plane). */
  public void startAgent(String name) {
    agents.computeIfAbsent(name, n -> new Heartbeat(admin, ControlPlane.OPERATOR_NAMESPACE, n, Defaults.renewInterval(),
        heartbeatTimeout, heartbeatTimeout.multipliedBy(2).dividedBy(3), () -> { }, () -> { }, () -> { }).start());
  }

  /** The node's agent stops renewing its Lease, as a killed agent would. */
  public void stopAgent(String name) {
    Heartbeat h = agents.remove(name);
    if (h != null) {
      h.close();
    }
  }

  public void removeNode(String name) {
    stopAgent(name);
    admin.leases().inNamespace(ControlPlane.OPERATOR_NAMESPACE).withName(Heartbeat.leaseName(name)).delete();
    admin.nodes().withName(name).delete();
  }

  @Override
  public void close() {
    List.copyOf(agents.keySet()).forEach(this::stopAgent);
  }

  /**
   * The status a kubelet reports: Ready (or not) and the node's InternalIP. Read and written again on a conflict: a
   * running operator labels a node it has just seen created.
   */
  public Node setReady(String name, String internalIP, boolean ready) {
    for (int attempt = 1; ; attempt++) {
      Node node = admin.nodes().withName(name).get();
      node.setStatus(new io.fabric8.kubernetes.api.model.NodeStatusBuilder()
          .addNewCondition().withType("Ready").withStatus(ready ? "True" : "False")
          .withReason(ready ? "KubeletReady" : "NodeStatusUnknown")
          .withLastHeartbeatTime(Instant.now().toString()).withLastTransitionTime(Instant.now().toString())
          .endCondition()
          .addNewAddress().withType("InternalIP").withAddress(internalIP).endAddress()
          .build());
      try {
        return admin.nodes().resource(node).updateStatus();
      } catch (KubernetesClientException e) {
        if (e.getCode() != 409 || attempt == 5) {
          throw e;
        }
      }
    }
  }

  /** {@code kubectl cordon} ({@code true}) or {@code uncordon}: spec.unschedulable. */
  public void cordon(String name, boolean cordoned) {
    admin.nodes().withName(name).edit(n -> {
      n.getSpec().setUnschedulable(cordoned ? Boolean.TRUE : null);
      return n;
    });
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
    scheduledPod(namespace, name, node, labels);
    return running(namespace, name, podIP);
  }

  /** A pod bound to its node, before the kubelet has written its IP (its sandbox is being set up). */
  public Pod scheduledPod(String namespace, String name, String node, Map<String, String> labels) {
    return admin.pods().inNamespace(namespace).resource(new PodBuilder().withNewMetadata().withName(name)
        .withNamespace(namespace).withLabels(labels).endMetadata()
        .withNewSpec().withNodeName(node).addNewContainer().withName("app").withImage("example.invalid/app:1")
        .endContainer().endSpec().build()).create();
  }

  /** What the kubelet writes once the pod's sandbox is up: Running, with its IP. */
  public Pod running(String namespace, String name, String podIP) {
    Pod pod = admin.pods().inNamespace(namespace).withName(name).get();
    pod.setStatus(new io.fabric8.kubernetes.api.model.PodStatusBuilder().withPhase("Running").withPodIP(podIP)
        .addNewPodIP(podIP).build());
    return admin.pods().inNamespace(namespace).resource(pod).updateStatus();
  }

  /** Sets the pod's label {@code key} to {@code value}, or removes it when null. */
  public Pod labelPod(String namespace, String name, String key, String value) {
    return admin.pods().inNamespace(namespace).withName(name).edit(p -> {
      var labels = new java.util.HashMap<>(java.util.Objects.requireNonNullElse(p.getMetadata().getLabels(),
          Map.<String, String>of()));
      if (value == null) {
        labels.remove(key);
      } else {
        labels.put(key, value);
      }
      p.getMetadata().setLabels(labels);
      return p;
    });
  }

  public void deletePod(String namespace, String name) {
    admin.pods().inNamespace(namespace).withName(name).withGracePeriod(0).delete();
  }
}
