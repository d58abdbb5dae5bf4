package io.natgate.plan;

import io.fabric8.kubernetes.api.model.Pod;
import io.natgate.api.v1alpha1.Sources;
import java.util.Collection;
import java.util.Comparator;
import java.util.List;
import java.util.Map;

/** Which pods a gateway's sources select. */
public final class PodSelection {
  private PodSelection() {
  }

  /**
   * Pods in a namespace matching namespaceSelector, matching podSelector, Running or Pending, with a pod IP, not on
   * the host network. Terminating pods stay selected while they still run: their traffic must not leak either.
   *
   * @param namespaceLabels labels of every namespace, by name
   */
  public static List<Pod> select(Sources sources, Collection<Pod> pods, Map<String, Map<String, String>> namespaceLabels) {
    return pods.stream()
        .filter(PodSelection::hasRoutableIP)
        .filter(p -> selects(sources, p.getMetadata().getNamespace(), p.getMetadata().getLabels(), namespaceLabels))
        .sorted(Comparator.comparing((Pod p) -> p.getMetadata().getNamespace()).thenComparing(p -> p.getMetadata().getName()))
        .toList();
  }

  /** Whether the sources select a pod of that namespace with those labels (whatever its IP and phase). */
  public static boolean selects(Sources sources, String namespace, Map<String, String> podLabels,
      Map<String, Map<String, String>> namespaceLabels) {
    return namespaceLabels.containsKey(namespace)
        && LabelSelectors.matches(sources.namespaceSelector, namespaceLabels.get(namespace))
        && LabelSelectors.matches(sources.podSelector, podLabels);
  }

  public static boolean hasRoutableIP(Pod pod) {
    var status = pod.getStatus();
    if (status == null || status.getPodIP() == null || status.getPodIP().isEmpty()
        || status.getPodIP().indexOf(':') >= 0) {
      return false;
    }
    if (pod.getSpec() != null && Boolean.TRUE.equals(pod.getSpec().getHostNetwork())) {
      return false;
    }
    return "Running".equals(status.getPhase()) || "Pending".equals(status.getPhase());
  }
}
