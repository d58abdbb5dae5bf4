package io.natgate.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.kubernetes.api.model.Condition;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/** Observed state; equal objects mean no status write. */
@JsonInclude(JsonInclude.Include.NON_NULL)
public class EgressGatewayStatus {
  @JsonPropertyDescription("The source IPs that selected traffic leaves with: what external firewalls allowlist.")
  public List<String> sourceIPs = new ArrayList<>();

  @JsonPropertyDescription("The sourceIPs listed only because a node may still SNAT with them (an egress IP removed "
      + "from the spec while its pods move away): keep them allowlisted until they leave this list.")
  // Empty rather than null when none: the status is written as a JSON merge patch, where a field left out stays.
  public List<String> drainingSourceIPs = new ArrayList<>();

  @JsonPropertyDescription("Which node holds each egress IP now, and since when.")
  public List<Assignment> assignments = new ArrayList<>();

  @JsonPropertyDescription("Every candidate node (matching nodeSelector), with readiness and data-plane state.")
  public List<NodeStatus> nodes = new ArrayList<>();

  @JsonPropertyDescription("How many running or pending pods with an IP are selected.")
  public int selectedPods;

  @JsonPropertyDescription("The spec generation this status describes.")
  public Long observedGeneration;

  @JsonPropertyDescription("With an allow list naming DNS names: what each resolves to now on the gateway nodes (the "
      + "largest count a node reports, and its latest change); empty without such names.")
  // Empty rather than null, as drainingSourceIPs: a merge patch that leaves the field out keeps the old names.
  public List<ResolvedName> resolvedNames = new ArrayList<>();

  @JsonPropertyDescription("Ready, Programmed and Degraded, each with a CamelCase reason and a one-line message.")
  public List<Condition> conditions = new ArrayList<>();

  @Override
  public boolean equals(Object o) {
    return o instanceof EgressGatewayStatus s && Objects.equals(sourceIPs, s.sourceIPs)
        && Objects.equals(drainingSourceIPs, s.drainingSourceIPs)
        && Objects.equals(assignments, s.assignments) && Objects.equals(nodes, s.nodes)
        && selectedPods == s.selectedPods && Objects.equals(observedGeneration, s.observedGeneration)
        && Objects.equals(resolvedNames, s.resolvedNames) && Objects.equals(conditions, s.conditions);
  }

  @Override
  public int hashCode() {
    return Objects.hash(sourceIPs, drainingSourceIPs, assignments, nodes, selectedPods, observedGeneration,
        resolvedNames, conditions);
  }
}
