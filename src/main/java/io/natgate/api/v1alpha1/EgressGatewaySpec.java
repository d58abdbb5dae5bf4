package io.natgate.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.generator.annotation.Default;
import io.fabric8.generator.annotation.Required;
import io.fabric8.generator.annotation.Size;
import io.fabric8.generator.annotation.ValidationRule;
import io.fabric8.crd.generator.annotation.SchemaFrom;
import io.fabric8.kubernetes.api.model.LabelSelector;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

@JsonInclude(JsonInclude.Include.NON_NULL)
public class EgressGatewaySpec {
  /** Shared by the CEL rules below: a usable unicast IPv4 host address. */
  static final String USABLE_IPV4 = "isIP(a) && ip(a).family() == 4 && ip(a).isGlobalUnicast()"
      + " && !cidr('0.0.0.0/8').containsIP(a) && !cidr('240.0.0.0/4').containsIP(a)";

  @Required
  @JsonPropertyDescription("Selects the candidate egress nodes. natgate labels them natgate.io/gateway=<name> "
      + "and assigns each egress IP to one ready candidate.")
  @ValidationRule(value = "has(self.matchLabels) || has(self.matchExpressions)",
      message = "nodeSelector must set matchLabels or matchExpressions: an empty selector would make every node a gateway")
  @SchemaFrom(type = SelectorSchema.class)
  public LabelSelector nodeSelector;

  @Size(max = 16)
  @JsonPropertyDescription("Stable source IPv4 addresses. Each is held by one gateway node at a time and moves "
      + "when that node fails. Empty: the gateway nodes' own InternalIPs are used.")
  @ValidationRule(value = "self.all(a, isIP(a) && ip(a).family() == 4)",
      message = "egressIPs must be IPv4 addresses like 198.51.100.10")
  @ValidationRule(value = "self.all(a, !(isIP(a) && ip(a).family() == 4) || (" + USABLE_IPV4 + "))",
      message = "egressIPs must be usable unicast addresses: not unspecified, 0.0.0.0/8, loopback, link-local, "
          + "multicast, broadcast or 240.0.0.0/4")
  @ValidationRule(value = "self.all(a, self.exists_one(b, b == a))", message = "egressIPs must not repeat an address")
  public List<@Size(max = 15) String> egressIPs = new ArrayList<>();

  @Required
  @JsonPropertyDescription("Whose traffic leaves through the gateway: pods matching both selectors.")
  public Sources sources;

  @JsonPropertyDescription("Which destinations are routed through the gateway. Default: all of 0.0.0.0/0.")
  public Destinations destinations = new Destinations();

  @JsonPropertyDescription("What happens to selected pods' traffic when no gateway can carry it: Drop (default) "
      + "never lets it leave with another source IP; Allow falls back to the node's own masquerade.")
  @Default("Drop")
  public FailurePolicy failurePolicy = FailurePolicy.Drop;

  @JsonPropertyDescription("The connection log of the gateway nodes: a record of each connection they translate. "
      + "On unless enabled is false.")
  public ConnectionLog connectionLog = new ConnectionLog();

  public Destinations destinations() {
    return destinations == null ? new Destinations() : destinations;
  }

  public FailurePolicy failurePolicy() {
    return failurePolicy == null ? FailurePolicy.Drop : failurePolicy;
  }

  public ConnectionLog connectionLog() {
    return connectionLog == null ? new ConnectionLog() : connectionLog;
  }

  public List<String> egressIPs() {
    return egressIPs == null ? List.of() : egressIPs;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof EgressGatewaySpec s && Objects.equals(nodeSelector, s.nodeSelector)
        && Objects.equals(egressIPs, s.egressIPs) && Objects.equals(sources, s.sources)
        && Objects.equals(destinations, s.destinations) && failurePolicy == s.failurePolicy
        && Objects.equals(connectionLog(), s.connectionLog());
  }

  @Override
  public int hashCode() {
    return Objects.hash(nodeSelector, egressIPs, sources, destinations, failurePolicy, connectionLog());
  }
}
