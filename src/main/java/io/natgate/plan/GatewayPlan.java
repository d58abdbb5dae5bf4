package io.natgate.plan;

import io.fabric8.kubernetes.api.model.Pod;
import io.natgate.api.v1alpha1.Assignment;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * What one gateway should look like now.
 *
 * @param candidates   nodes matching nodeSelector, sorted
 * @param readyNodes   the ready ones among them
 * @param unready      the others, each with why (see {@link NodeReadiness#whyNotReady})
 * @param assignments  one per usable egress IP; node is null when no ready node can hold it
 * @param sourceIPs    what the status publishes for firewalls
 * @param conflicts    egress IPs already claimed by an older gateway, with that gateway's name
 * @param nodeStates   by node, what this gateway wants there (its EgressNodeState's spec)
 * @param selectedPods the pods the sources select
 * @param problems     spec errors the schema cannot catch (selector operators), each naming its field
 * @param takenOver    egress IPs a standby took over by its peers' verdict (adopted here), with that node
 * @param cordoned     ready candidates that hand their IPs over because they are cordoned (or being drained)
 * @param deleted      nodes the last assignments named whose Node object is gone or being deleted
 */
public record GatewayPlan(List<String> candidates, Set<String> readyNodes, Map<String, String> unready,
    List<Assignment> assignments,
    List<String> sourceIPs, Map<String, String> conflicts, Map<String, EgressNodeStateSpec> nodeStates,
    List<Pod> selectedPods, List<String> problems, Map<String, String> takenOver, Set<String> cordoned,
    Set<String> deleted) {

  public List<Assignment> unassigned() {
    return assignments.stream().filter(a -> a.node == null).toList();
  }
}
