package io.natgate.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

@JsonInclude(JsonInclude.Include.NON_NULL)
public class EgressNodeStateSpec {
  @JsonPropertyDescription("This node's part in each EgressGateway, keyed by gateway name.")
  public Map<String, NodeGatewayState> gateways = new TreeMap<>();

  @Override
  public boolean equals(Object o) {
    return o instanceof EgressNodeStateSpec s && Objects.equals(gateways, s.gateways);
  }

  @Override
  public int hashCode() {
    return Objects.hashCode(gateways);
  }
}
