package io.natgate.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import java.util.Objects;

/** Written by the node's agent. */
@JsonInclude(JsonInclude.Include.NON_NULL)
public class EgressNodeStateStatus {
  @JsonPropertyDescription("The metadata.generation of the spec the agent last applied successfully.")
  public Long appliedGeneration;

  @JsonPropertyDescription("Why the last apply failed; empty when it succeeded.")
  public String error;

  @JsonPropertyDescription("The egress IPs of this gateway the node holds now, by its agent's own decision (a "
      + "standby that took one over lists it here; the operator adopts that).")
  public java.util.List<String> held;

  @JsonPropertyDescription("Gateway role with an allow list: what each of its DNS names resolves to in this node's "
      + "kernel (counted every few seconds, written only when a number changes).")
  public java.util.List<ResolvedName> resolvedNames;

  @JsonPropertyDescription("Destinations for which this gateway's egress IPs on this node use more than 80 % of their "
      + "SNAT source ports (listed until they fall to 70 %), most used first: new connections to them fail when none "
      + "is left. Measured from the connection log (spec.connectionLog).")
  public java.util.List<SnatPortUse> snatPortUse;

  @Override
  public boolean equals(Object o) {
    return o instanceof EgressNodeStateStatus s && Objects.equals(appliedGeneration, s.appliedGeneration)
        && Objects.equals(error, s.error)
        && Objects.equals(held, s.held) && Objects.equals(resolvedNames, s.resolvedNames)
        && Objects.equals(snatPortUse, s.snatPortUse);
  }

  @Override
  public int hashCode() {
    return Objects.hash(appliedGeneration, error, held, resolvedNames, snatPortUse);
  }
}
