package io.natgate.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.crd.generator.annotation.SelectableField;
import io.fabric8.generator.annotation.Required;
import io.fabric8.generator.annotation.ValidationRule;
import java.util.Objects;

/** One node's part in one EgressGateway, with the node and the gateway it belongs to. */
@JsonInclude(JsonInclude.Include.NON_NULL)
public class EgressNodeStateSpec extends NodeGatewayState {
  @Required
  @SelectableField
  @ValidationRule(value = "self == oldSelf", message = "nodeName is immutable")
  @JsonPropertyDescription("The node whose agent applies this state.")
  public String nodeName;

  @Required
  @SelectableField
  @ValidationRule(value = "self == oldSelf", message = "gateway is immutable")
  @JsonPropertyDescription("The EgressGateway this state is part of.")
  public String gateway;

  public EgressNodeStateSpec() {
  }

  public EgressNodeStateSpec(String nodeName, String gateway, NodeGatewayState part) {
    super(part);
    this.nodeName = nodeName;
    this.gateway = gateway;
  }

  @Override
  public boolean equals(Object o) {
    return super.equals(o) && o instanceof EgressNodeStateSpec s && Objects.equals(nodeName, s.nodeName)
        && Objects.equals(gateway, s.gateway);
  }

  @Override
  public int hashCode() {
    return Objects.hash(super.hashCode(), nodeName, gateway);
  }
}
