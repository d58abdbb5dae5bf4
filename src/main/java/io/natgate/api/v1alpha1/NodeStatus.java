package io.natgate.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import java.util.Objects;

@JsonInclude(JsonInclude.Include.NON_NULL)
public class NodeStatus {
  @JsonPropertyDescription("Node name.")
  public String name;

  @JsonPropertyDescription("Whether the node can hold egress IPs now.")
  public boolean ready;

  @JsonPropertyDescription("Whether the node's agent has applied the latest desired state.")
  public boolean programmed;

  public NodeStatus() {
  }

  public NodeStatus(String name, boolean ready, boolean programmed) {
    this.name = name;
    this.ready = ready;
    this.programmed = programmed;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof NodeStatus n && Objects.equals(name, n.name) && ready == n.ready && programmed == n.programmed;
  }

  @Override
  public int hashCode() {
    return Objects.hash(name, ready, programmed);
  }
}
