package io.natgate.agent;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.fabric8.kubernetes.api.model.ObjectMetaBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import io.natgate.api.v1alpha1.FailurePolicy;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.dataplane.IptablesBackend;
import io.natgate.lab.KernelState;
import io.natgate.lab.LabNode;
import io.natgate.lab.LabPod;
import io.natgate.lab.NetworkLab;
import io.natgate.testing.ControlPlane;
import io.natgate.testing.ControlPlaneExtension;
import io.natgate.testing.LabAgent;
import io.natgate.testing.TcpProxy;
import java.net.URI;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The agent on a node whose rules are in iptables-legacy, and on one whose rules are in iptables-nft: it finds the
 * node's backend from kubelet's chains, programs only that one (a pod leaves with the egress IP, every packet), takes
 * out natgate chains that an earlier run left in the other backend (here SNATing to a wrong address), keeps only its
 * base (Renderer.base) in the node's backend once the state is deleted, and leaves nothing in either once uninstalled.
 */
@ExtendWith(ControlPlaneExtension.class)
class IptablesBackendLabIT {
  static final String EGRESS_IP = "198.18.0.121";
  /** Where the stale chains of an earlier run in the other backend translate to: any packet seen from it is a leak. */
  static final String STALE_IP = "198.18.0.99";
  static final int CONNECTIONS = 20;

  @RegisterExtension
  static final NetworkLab lab = NetworkLab.withNodes(1).podsPerNode(1);

  private final ControlPlane controlPlane;

  IptablesBackendLabIT(ControlPlane controlPlane) {
    this.controlPlane = controlPlane;
  }

  @Test
  void aLegacyNodeGetsLegacyRulesAndTheStateDeletedLeavesTheBaseThenUninstallNothingInEither() throws Exception {
    run(IptablesBackend.LEGACY, false);
  }

  @Test
  void anNftNodeGetsNftRulesAndUninstallLeavesNothingInEither() throws Exception {
    run(IptablesBackend.NFT, true);
  }

  private void run(IptablesBackend nodes, boolean uninstall) throws Exception {
    LabNode node = lab.node(1);
    LabPod pod = lab.pod(1, 1);
    KubernetesClient admin = controlPlane.admin();
    URI api = URI.create(admin.getConfiguration().getMasterUrl());
    EgressNodeState state = state(node.name(), "backend-" + nodes.name().toLowerCase(), pod);
    try {
      nodeRulesIn(node, nodes, true);
      Map<String, KernelState> baseline = lab.kernelStates();
      // An earlier agent wrote the other backend (the node switched since): its chains SNAT to a wrong address.
      restore(node, nodes.other(), "*nat\n:NATGATE-POSTROUTING - [0:0]\n-I POSTROUTING 1 -j NATGATE-POSTROUTING\n"
          + "-A NATGATE-POSTROUTING -s " + pod.ip() + "/32 -j SNAT --to-source " + STALE_IP + "\nCOMMIT\n");
      try (TcpProxy link = new TcpProxy(api.getHost(), api.getPort());
          Agent agent = LabAgent.start(controlPlane, lab, node, link)) {
        assertThat(agent.dataplane().iptables()).isEqualTo(nodes);
        LabAgent.awaitBase(lab, node, nodes);
        await().atMost(Duration.ofSeconds(20)).until(() -> !save(node, nodes.other()).contains("NATGATE"));
        Map<String, KernelState> withBase = lab.kernelStates(); // the stale chains gone, the base in
        EgressNodeState created = admin.resource(state).create();
        await().atMost(Duration.ofSeconds(20))
            .until(() -> lab.seenSource(pod).equals(Optional.of(EGRESS_IP)));

        assertThat(save(node, nodes)).contains("-A POSTROUTING -j NATGATE-POSTROUTING")
            .contains("-j SNAT --to-source " + EGRESS_IP);
        assertThat(save(node, nodes.other())).as("the other backend").doesNotContain("NATGATE");
        lab.resetArrivals();
        for (int i = 0; i < CONNECTIONS; i++) {
          assertThat(lab.seenSource(pod)).contains(EGRESS_IP);
        }
        Map<String, Long> arrivals = lab.arrivals(pod);
        System.out.printf("%s node: packets at the external host by source: %s%n", nodes, arrivals);
        assertThat(arrivals.keySet()).as("sources seen at the external host").containsExactly(EGRESS_IP);
        assertThat(arrivals.get(EGRESS_IP)).isGreaterThanOrEqualTo(CONNECTIONS);

        if (!uninstall) {
          // The state deleted: the base stays (in the node's backend only) while the agent runs; uninstalled below.
          admin.resource(created).delete();
          await().atMost(Duration.ofSeconds(20)).untilAsserted(() -> assertThat(lab.kernelStates()).isEqualTo(withBase));
          assertThat(save(node, nodes.other())).as("the other backend").doesNotContain("NATGATE");
        }
        agent.uninstall();
        assertThat(lab.kernelStates()).isEqualTo(baseline);
        for (IptablesBackend b : IptablesBackend.values()) {
          assertThat(save(node, b)).as("%s after", b).doesNotContain("NATGATE");
        }
      }
    } finally {
      admin.resource(state).delete();
      admin.leases().inNamespace(ControlPlane.OPERATOR_NAMESPACE).withName(Heartbeat.leaseName(node.name())).delete();
      nodeRulesIn(node, IptablesBackend.NFT, false); // as the lab built it

    }
  }

  /**
   * Puts the node's own rules, the lab's CNI masquerade and (with {@code kubelet}) kubelet's chains, in {@code backend}
   * and takes them out of the other one, as a node that uses {@code backend} has them.
   */
  private static void nodeRulesIn(LabNode node, IptablesBackend backend, boolean kubelet) {
    String cni = NetworkLab.CNI_CHAIN;
    for (IptablesBackend b : IptablesBackend.values()) {
      String save = save(node, b);
      var text = new StringBuilder();
      boolean cniHere = save.contains(":" + cni + " ");
      if (b == backend && !cniHere) {
        text.append("*nat\n:%1$s - [0:0]\n-A POSTROUTING -j %1$s\n-A %1$s -s %2$s ! -d %2$s -j MASQUERADE\nCOMMIT\n"
            .formatted(cni, NetworkLab.POD_CIDR));
      } else if (b != backend && cniHere) {
        text.append("*nat\n:%1$s - [0:0]\n-D POSTROUTING -j %1$s\n-X %1$s\nCOMMIT\n".formatted(cni));
      }
      boolean kubeletHere = save.contains(":KUBE-IPTABLES-HINT ");
      if (b == backend && kubelet && !kubeletHere) {
        text.append("*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n*filter\n:KUBE-KUBELET-CANARY - [0:0]\nCOMMIT\n");
      } else if ((b != backend || !kubelet) && kubeletHere) {
        text.append("*mangle\n:KUBE-IPTABLES-HINT - [0:0]\n-X KUBE-IPTABLES-HINT\nCOMMIT\n"
            + "*filter\n:KUBE-KUBELET-CANARY - [0:0]\n-X KUBE-KUBELET-CANARY\nCOMMIT\n");
      }
      if (!text.isEmpty()) {
        restore(node, b, text.toString());
      }
    }
  }

  private static void restore(LabNode node, IptablesBackend backend, String text) {
    lab.exec(node.ns(), "sh", "-c", backend.restore() + " --noflush <<'EOF'\n" + text + "EOF\n");
  }

  private static String save(LabNode node, IptablesBackend backend) {
    return lab.exec(node.ns(), backend.save());
  }

  private static EgressNodeState state(String node, String gateway, LabPod pod) {
    var gw = new NodeGatewayState();
    gw.failurePolicy = FailurePolicy.Drop;
    gw.cidrs = List.of("0.0.0.0/0");
    gw.excludedCidrs = List.of(NetworkLab.POD_CIDR);
    gw.snat.add(new NodeGatewayState.Snat(EGRESS_IP, true, List.of(pod.ip())));
    var state = new EgressNodeState();
    state.setMetadata(new ObjectMetaBuilder().withName(EgressNodeState.nameFor(gateway, node)).build());
    state.setSpec(new EgressNodeStateSpec(node, gateway, gw));
    return state;
  }
}
