package io.natgate.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/** One node's part in one EgressGateway: gateway role (snat), director role (steer), or both. */
@JsonInclude(JsonInclude.Include.NON_NULL)
public class NodeGatewayState {
  @JsonPropertyDescription("Drop or Allow selected traffic that has no gateway to go through.")
  public FailurePolicy failurePolicy = FailurePolicy.Drop;

  @JsonPropertyDescription("Destinations routed through the gateway.")
  public List<String> cidrs = new ArrayList<>();

  @JsonPropertyDescription("Destinations never routed through the gateway (the spec's plus the cluster's own).")
  public List<String> excludedCidrs = new ArrayList<>();

  @JsonPropertyDescription("Gateway role: egress IPs this node holds, each with the pod IPs SNATed to it.")
  public List<Snat> snat = new ArrayList<>();

  @JsonPropertyDescription("Director role: local pod IPs to steer to the gateway holding an egress IP.")
  public List<Steer> steer = new ArrayList<>();

  @JsonPropertyDescription("Gateway role with the connection log on: the pods to name in its records.")
  public ConnectionLogState connectionLog;

  @Override
  public boolean equals(Object o) {
    // Same class only: a spec (this plus its node and gateway) never equals a plain part.
    return o != null && o.getClass() == getClass() && o instanceof NodeGatewayState s
        && failurePolicy == s.failurePolicy && Objects.equals(cidrs, s.cidrs)
        && Objects.equals(excludedCidrs, s.excludedCidrs) && Objects.equals(snat, s.snat)
        && Objects.equals(steer, s.steer) && Objects.equals(connectionLog, s.connectionLog);
  }

  @Override
  public int hashCode() {
    return Objects.hash(failurePolicy, cidrs, excludedCidrs, snat, steer, connectionLog);
  }

  @JsonInclude(JsonInclude.Include.NON_NULL)
  public static class Snat {
    @JsonPropertyDescription("Source IP to SNAT to.")
    public String egressIP;

    @JsonPropertyDescription("True: add egressIP as a /32 secondary address and announce it; false: it is the node's own IP.")
    public boolean holdAddress;

    @JsonPropertyDescription("Pod IPs (on any node) whose traffic leaves with egressIP, sorted.")
    public List<String> sources = new ArrayList<>();

    public Snat() {
    }

    public Snat(String egressIP, boolean holdAddress, List<String> sources) {
      this.egressIP = egressIP;
      this.holdAddress = holdAddress;
      this.sources = sources;
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Snat s && Objects.equals(egressIP, s.egressIP) && holdAddress == s.holdAddress
          && Objects.equals(sources, s.sources);
    }

    @Override
    public int hashCode() {
      return Objects.hash(egressIP, holdAddress, sources);
    }
  }

  @JsonInclude(JsonInclude.Include.NON_NULL)
  public static class Steer {
    @JsonPropertyDescription("The egress IP these pods leave with; the tunnel's remote end.")
    public String egressIP;

    @JsonPropertyDescription("The node holding egressIP now; absent when no ready node holds it (failurePolicy applies).")
    public String gatewayNode;

    @JsonPropertyDescription("That node's InternalIP.")
    public String gatewayNodeIP;

    @JsonPropertyDescription("Local pod IPs to steer, sorted.")
    public List<String> sources = new ArrayList<>();

    public Steer() {
    }

    public Steer(String egressIP, String gatewayNode, String gatewayNodeIP, List<String> sources) {
      this.egressIP = egressIP;
      this.gatewayNode = gatewayNode;
      this.gatewayNodeIP = gatewayNodeIP;
      this.sources = sources;
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Steer s && Objects.equals(egressIP, s.egressIP) && Objects.equals(gatewayNode, s.gatewayNode)
          && Objects.equals(gatewayNodeIP, s.gatewayNodeIP) && Objects.equals(sources, s.sources);
    }

    @Override
    public int hashCode() {
      return Objects.hash(egressIP, gatewayNode, gatewayNodeIP, sources);
    }
  }
}
