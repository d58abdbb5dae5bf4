package io.natgate.bench;

import io.fabric8.kubernetes.api.model.LabelSelectorBuilder;
import io.fabric8.kubernetes.api.model.Node;
import io.fabric8.kubernetes.api.model.NodeBuilder;
import io.fabric8.kubernetes.api.model.ObjectMetaBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.EgressGatewaySpec;
import io.natgate.api.v1alpha1.Sources;
import io.natgate.plan.ClusterSnapshot;
import io.natgate.plan.GatewayPlanner;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The operator's CPU for one pod event at the control-plane benchmark's scale (100 gateways, one namespace of 50 pods
 * each, 5,000 pods on 50 nodes), planning only: every gateway over every pod (what a pod event cost before the
 * reconciler mapped it to the gateways selecting its namespace) against that one gateway over its namespace's pods.
 */
public final class PlanningBenchmark {
  private PlanningBenchmark() {
  }

  public static void main(String[] args) {
    int nodes = ControlPlaneBenchmark.NODES;
    int gateways = ControlPlaneBenchmark.GATEWAYS;
    int perGateway = ControlPlaneBenchmark.PODS_PER_GATEWAY;
    Map<String, Node> nodesByName = new HashMap<>();
    for (int i = 0; i < nodes; i++) {
      String name = "node-" + i;
      nodesByName.put(name, new NodeBuilder().withNewMetadata().withName(name)
          .withLabels(Map.of("group", "g" + (i < 10 ? i / 2 : 99))).endMetadata().withNewStatus().addNewCondition()
          .withType("Ready").withStatus("True").endCondition().addNewAddress().withType("InternalIP")
          .withAddress("10.0.0." + (i + 1)).endAddress().endStatus().build());
    }
    Map<String, Map<String, String>> namespaces = new HashMap<>();
    List<EgressGateway> all = new ArrayList<>();
    Map<String, List<Pod>> podsByNamespace = new HashMap<>();
    List<Pod> pods = new ArrayList<>();
    for (int g = 0; g < gateways; g++) {
      String ns = "bench-" + g;
      namespaces.put(ns, Map.of("team", ns));
      EgressGateway gw = new EgressGateway();
      gw.setMetadata(new ObjectMetaBuilder().withName("gw-" + g).withGeneration(1L)
          .withCreationTimestamp("2026-11-25T00:00:00Z").build());
      gw.setSpec(new EgressGatewaySpec());
      gw.getSpec().nodeSelector = new LabelSelectorBuilder().withMatchLabels(Map.of("group", "g" + g % 5)).build();
      gw.getSpec().egressIPs = new ArrayList<>(List.of("198.51.100." + (g + 1)));
      gw.getSpec().sources = new Sources(new LabelSelectorBuilder().withMatchLabels(Map.of("team", ns)).build(), null);
      all.add(gw);
      for (int p = 0; p < perGateway; p++) {
        int i = g * perGateway + p;
        Pod pod = new PodBuilder().withNewMetadata().withNamespace(ns).withName("pod-" + p).endMetadata()
            .withNewSpec().withNodeName("node-" + i % nodes).endSpec().withNewStatus().withPhase("Running")
            .withPodIP("10.1." + i / 250 + "." + (i % 250 + 1)).endStatus().build();
        pods.add(pod);
        podsByNamespace.computeIfAbsent(ns, k -> new ArrayList<>()).add(pod);
      }
    }
    Set<String> live = nodesByName.keySet();
    Instant now = Instant.now();
    ClusterSnapshot everyPod = new ClusterSnapshot(nodesByName, pods, namespaces, all, List.of(), live);
    ClusterSnapshot ownPods = new ClusterSnapshot(nodesByName, podsByNamespace.get("bench-0"), namespaces, all,
        List.of(), live);

    for (int round = 0; round < 3; round++) { // the first rounds warm the JIT up; the last one is printed
      long start = System.nanoTime();
      for (EgressGateway gw : all) {
        GatewayPlanner.plan(gw, everyPod, now);
      }
      long before = System.nanoTime() - start;
      int repeat = 100;
      start = System.nanoTime();
      for (int r = 0; r < repeat; r++) {
        GatewayPlanner.plan(all.get(0), ownPods, now);
      }
      long after = (System.nanoTime() - start) / repeat;
      if (round == 2) {
        System.out.printf("planning per pod event: every gateway over every pod %.1f ms; "
            + "the selecting gateway over its namespace's pods %.3f ms (%.0fx less)%n",
            before / 1e6, after / 1e6, (double) before / after);
      }
    }
  }
}
