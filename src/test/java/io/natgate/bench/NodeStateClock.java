package io.natgate.bench;

import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.informers.ResourceEventHandler;
import io.fabric8.kubernetes.client.informers.SharedIndexInformer;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.NodeGatewayState;
import java.time.Instant;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * Where a pod's API path spends its time, as the API server shows it (watched, not polled): when each node's state
 * starts listing the pod's address (the operator's write) and when that node's agent reports it applied.
 */
final class NodeStateClock implements AutoCloseable {
  private final String podIP;
  private final SharedIndexInformer<EgressNodeState> informer;
  /** By node: when its state first listed the pod, and the generation that did. */
  private final Map<String, Instant> listed = new TreeMap<>();
  private final Map<String, Long> listedGeneration = new TreeMap<>();
  private final Map<String, Instant> applied = new TreeMap<>();

  NodeStateClock(KubernetesClient admin, String podIP) {
    this.podIP = podIP;
    this.informer = admin.resources(EgressNodeState.class).inform(new ResourceEventHandler<>() {
      @Override
      public void onAdd(EgressNodeState s) {
        seen(s);
      }

      @Override
      public void onUpdate(EgressNodeState old, EgressNodeState s) {
        seen(s);
      }

      @Override
      public void onDelete(EgressNodeState s, boolean unknown) {
      }
    });
  }

  private synchronized void seen(EgressNodeState s) {
    Instant now = Instant.now();
    if (s.getSpec() == null) {
      return;
    }
    String node = s.getSpec().nodeName;
    if (!listed.containsKey(node) && lists(s.getSpec(), podIP)) {
      listed.put(node, now);
      listedGeneration.put(node, s.getMetadata().getGeneration());
    }
    Long generation = listedGeneration.get(node);
    if (generation != null && !applied.containsKey(node) && s.getStatus() != null
        && s.getStatus().appliedGeneration != null && s.getStatus().appliedGeneration >= generation) {
      applied.put(node, now);
    }
  }

  static boolean lists(NodeGatewayState s, String podIP) {
    return s.steer.stream().anyMatch(st -> st.sources.contains(podIP))
        || s.snat.stream().anyMatch(sn -> sn.sources.contains(podIP));
  }

  /** Milliseconds from {@code from} until the node's state listed the pod, or -1. */
  synchronized long listedAfter(String node, Instant from) {
    return since(from, listed.get(node));
  }

  /** Milliseconds from {@code from} until the node's agent reported the state that listed the pod applied, or -1. */
  synchronized long appliedAfter(String node, Instant from) {
    return since(from, applied.get(node));
  }

  private static long since(Instant from, Instant at) {
    return at == null ? -1 : java.time.Duration.between(from, Objects.requireNonNull(at)).toMillis();
  }

  @Override
  public void close() {
    informer.close();
  }
}
