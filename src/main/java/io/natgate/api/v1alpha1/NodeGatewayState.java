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

  @JsonPropertyDescription("The gateway's allow list (spec.destinations.allow), when it has one: enforced by the gateway "
      + "role; its DNS names followed by the director role's DNS path.")
  @io.fabric8.generator.annotation.Size(max = 128)
  public List<AllowEntry> allow;

  @JsonPropertyDescription("Gateway role: egress IPs this node holds, each with the pod IPs SNATed to it.")
  public List<Snat> snat = new ArrayList<>();

  @JsonPropertyDescription("Director role: local pod IPs to steer to the gateway holding an egress IP.")
  public List<Steer> steer = new ArrayList<>();

  @JsonPropertyDescription("Peer liveness: the nodes that watch each other for this gateway, who holds each egress IP "
      + "and who takes it over; absent when the gateway's peer group is too small for a quorum.")
  public Peers peers;

  @JsonPropertyDescription("Gateway role with the connection log on: the pods to name in its records.")
  public ConnectionLogState connectionLog;

  public NodeGatewayState() {
  }

  /**
   * A shallow copy of every field (the lists are shared): the one place that lists them all, so that a field added
   * here is carried by whatever copies a part (node states, the agent's early and holding views).
   */
  public NodeGatewayState(NodeGatewayState other) {
    failurePolicy = other.failurePolicy;
    cidrs = other.cidrs;
    excludedCidrs = other.excludedCidrs;
    allow = other.allow;
    snat = other.snat;
    steer = other.steer;
    peers = other.peers;
    connectionLog = other.connectionLog;
  }

  @Override
  public boolean equals(Object o) {
    // Same class only: a spec (this plus its node and gateway) never equals a plain part.
    return o != null && o.getClass() == getClass() && o instanceof NodeGatewayState s
        && failurePolicy == s.failurePolicy && Objects.equals(cidrs, s.cidrs)
        && Objects.equals(excludedCidrs, s.excludedCidrs) && Objects.equals(allow, s.allow)
        && Objects.equals(snat, s.snat)
        && Objects.equals(steer, s.steer) && Objects.equals(peers, s.peers)
        && Objects.equals(connectionLog, s.connectionLog);
  }

  @Override
  public int hashCode() {
    return Objects.hash(failurePolicy, cidrs, excludedCidrs, allow, snat, steer, peers, connectionLog);
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

  /** A gateway's peer group, as its members' agents need it to watch each other and to fail over without the API. */
  @JsonInclude(JsonInclude.Include.NON_NULL)
  public static class Peers {
    @JsonPropertyDescription("The group: the gateway's candidate nodes and a few witness nodes, sorted by name.")
    public List<Member> members = new ArrayList<>();

    @JsonPropertyDescription("Per egress IP: the node holding it and, in order, the nodes that take it over.")
    public List<Succession> successions = new ArrayList<>();

    @JsonPropertyDescription("SNAT kept ready on this node for the egress IPs it is a standby for; its address is "
        + "added only when this node takes the IP over.")
    public List<Snat> standby = new ArrayList<>();

    @Override
    public boolean equals(Object o) {
      return o instanceof Peers p && Objects.equals(members, p.members) && Objects.equals(successions, p.successions)
          && Objects.equals(standby, p.standby);
    }

    @Override
    public int hashCode() {
      return Objects.hash(members, successions, standby);
    }
  }

  @JsonInclude(JsonInclude.Include.NON_NULL)
  public static class Member {
    @JsonPropertyDescription("Node name.")
    public String name;

    @JsonPropertyDescription("Its InternalIP, where its agent sends and receives peer heartbeats.")
    public String ip;

    public Member() {
    }

    public Member(String name, String ip) {
      this.name = name;
      this.ip = ip;
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Member m && Objects.equals(name, m.name) && Objects.equals(ip, m.ip);
    }

    @Override
    public int hashCode() {
      return Objects.hash(name, ip);
    }
  }

  @JsonInclude(JsonInclude.Include.NON_NULL)
  public static class Succession {
    @JsonPropertyDescription("The egress IP.")
    public String egressIP;

    @JsonPropertyDescription("The node assigned to hold it.")
    public String holder;

    @JsonPropertyDescription("The nodes that take it over when the holder's peers stop hearing it, first first.")
    public List<String> standbys = new ArrayList<>();

    @JsonPropertyDescription("A planned move in progress (make-before-break): the node that still holds the IP and "
        + "keeps it until the operator has seen the holder take it; the holder adds it although this node still "
        + "claims it.")
    public String releasing;

    public Succession() {
    }

    public Succession(String egressIP, String holder, List<String> standbys) {
      this(egressIP, holder, standbys, null);
    }

    public Succession(String egressIP, String holder, List<String> standbys, String releasing) {
      this.egressIP = egressIP;
      this.holder = holder;
      this.standbys = standbys;
      this.releasing = releasing;
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Succession s && Objects.equals(egressIP, s.egressIP) && Objects.equals(holder, s.holder)
          && Objects.equals(standbys, s.standbys) && Objects.equals(releasing, s.releasing);
    }

    @Override
    public int hashCode() {
      return Objects.hash(egressIP, holder, standbys, releasing);
    }
  }
}
