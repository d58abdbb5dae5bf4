package io.natgate.dns;

import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.dataplane.Hook;
import io.natgate.dataplane.KernelPlan;
import java.util.List;
import java.util.Map;

/**
 * The kernel's part of the DNS path, rendered as text (pure): the queries (UDP and TCP port 53, to any resolver) of
 * the pods this node answers DNS for are DNATed to the node's DNS proxy. Added to what the data plane renders, so
 * that the agent applies, observes and repairs it like the rest, and leaves it in place when it stops: without the
 * proxy, the queries of those pods fail (nothing listens) instead of getting answers their gateway does not follow.
 *
 * <p>Its chain is jumped to as the first rule of nat PREROUTING, ahead of kube-proxy's KUBE-SERVICES: the first DNAT
 * of a connection is the only one, so a query to the cluster DNS service reaches the proxy, not a DNS pod. The proxy
 * then asks its upstream from the node itself, through kube-proxy's OUTPUT rules.
 */
public final class DnsRedirect {
  /** The pods whose queries go to the proxy. */
  public static final String SET = "natgate-dns";

  private DnsRedirect() {
  }

  /** The NATGATE-PREROUTING rules; none when no pod of this node needs its DNS followed. */
  public static List<String> rules(String nodeIP, int proxyPort, String tunnelDevice) {
    String chain = "-A " + Hook.NAT_PREROUTING.chain;
    // Not from the tunnel: another node's pods are answered by their own node.
    String from = " ! -i " + tunnelDevice;
    String to = " --dport 53 -j DNAT --to-destination " + nodeIP + ":" + proxyPort;
    return List.of(
        chain + from + " -p udp -m set --match-set " + SET + " src -m udp" + to,
        chain + from + " -p tcp -m set --match-set " + SET + " src -m tcp" + to);
  }

  /** {@code plan} with the redirect of the pods of {@code states} that have routes, if any. */
  public static KernelPlan addTo(KernelPlan plan, Map<String, ? extends NodeGatewayState> states, String nodeIP,
      int proxyPort, String tunnelDevice) {
    List<String> pods = List.copyOf(DnsRoutes.byPod(states).keySet());
    if (pods.isEmpty()) {
      return plan;
    }
    return plan.withSet(new KernelPlan.IpSet(SET, "hash:ip", pods))
        .withRules(Hook.NAT_PREROUTING, rules(nodeIP, proxyPort, tunnelDevice));
  }
}
