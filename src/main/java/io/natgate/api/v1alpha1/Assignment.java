package io.natgate.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import java.util.Objects;

@JsonInclude(JsonInclude.Include.NON_NULL)
public class Assignment {
  @JsonPropertyDescription("The egress IP.")
  public String egressIP;

  @JsonPropertyDescription("The node that holds it.")
  public String node;

  @JsonPropertyDescription("When it was assigned to this node (RFC 3339).")
  public String since;

  public Assignment() {
  }

  public Assignment(String egressIP, String node, String since) {
    this.egressIP = egressIP;
    this.node = node;
    this.since = since;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Assignment a && Objects.equals(egressIP, a.egressIP) && Objects.equals(node, a.node)
        && Objects.equals(since, a.since);
  }

  @Override
  public int hashCode() {
    return Objects.hash(egressIP, node, since);
  }

  @Override
  public String toString() {
    return egressIP + "@" + node;
  }
}
