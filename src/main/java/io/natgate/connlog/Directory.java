package io.natgate.connlog;

import io.natgate.api.v1alpha1.NodeGatewayState;
import java.util.HashMap;
import java.util.Map;

/**
 * What the node's states say about the connections to log: the gateway of each egress IP held here with the log
 * on, and the pod (namespace/name) of each source IP. Built from the states the agent applies (pure).
 */
public record Directory(Map<String, String> gatewayByEgressIP, Map<String, String> podByIP, boolean denying) {
  public static final Directory EMPTY = new Directory(Map.of(), Map.of(), false);

  public static Directory of(Map<String, ? extends NodeGatewayState> byGateway) {
    Map<String, String> gateways = new HashMap<>();
    Map<String, String> pods = new HashMap<>();
    boolean denying = false;
    for (var e : byGateway.entrySet()) {
      NodeGatewayState state = e.getValue();
      String gateway = e.getKey();
      denying |= state.connectionLog != null && state.allow != null && !state.snat.isEmpty();
      if (state.connectionLog != null) {
        state.snat.forEach(sn -> gateways.put(sn.egressIP, gateway));
        Map<String, String> named = state.connectionLog.pods == null ? Map.of() : state.connectionLog.pods;
        named.forEach((ip, pod) -> {
          if (ip != null && pod != null) {
            pods.put(ip, pod);
          }
        });
      }
    }
    return new Directory(Map.copyOf(gateways), Map.copyOf(pods), denying);
  }

  /** True when some gateway here has the log on and an allow list: its refusals are logged (NFLOG). */
  public boolean denying() {
    return denying;
  }

  /** True when some gateway here has the log on: the listener must run. */
  public boolean logging() {
    return !gatewayByEgressIP.isEmpty();
  }
}
