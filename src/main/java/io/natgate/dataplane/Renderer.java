package io.natgate.dataplane;

import io.natgate.Sha256;
import io.natgate.api.v1alpha1.AllowEntry;
import io.natgate.api.v1alpha1.FailurePolicy;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.dataplane.KernelPlan.IpSet;
import io.natgate.dataplane.KernelPlan.MarkRule;
import io.natgate.dataplane.KernelPlan.Route;
import io.natgate.plan.IpAddresses;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Turns a node's desired state into the kernel objects that implement it (pure). Per gateway: a set of its
 * destinations and one of its exclusions; per egress IP this node holds, a set of the pods SNATed to it; per egress
 * IP local pods are steered to, a set of those pods, a mark, and a table whose default route is the tunnel with
 * that egress IP as its remote end, so that a failover needs no change here.
 */
public final class Renderer {
  private Renderer() {
  }

  /**
   * What the agent keeps on its node while it runs, whatever its gateways (what {@link #render} gives for none): the
   * tunnel device and its settings, natgate's chains with their jumps, the held set, and the rules that are the same
   * in every plan, each of which matches only packets that natgate marked or tunnelled (none here without a
   * gateway), so the node forwards and NATs as it would without natgate. A director's first gateway then adds only
   * its own sets, rules and routes. Removed only when the agent is uninstalled ({@link KernelPlan#EMPTY}).
   */
  public static KernelPlan base(DataplaneSettings s) {
    return render(Map.of(), s);
  }

  /** @param gateways this node's part in each gateway, by gateway name (none: the {@link #base}) */
  public static KernelPlan render(Map<String, ? extends NodeGatewayState> gateways, DataplaneSettings s) {
    return render(gateways, s, DestinationSets.TYPE);
  }

  /**
   * @param nameSets the type of the names' sets this kernel has ({@link DestinationSets#TYPE} or
   *              {@link DestinationSets#PORT_TYPE}); null: none, and the allow lists' DNS names match nothing (their
   *              connections are refused: closed, not open) and get no set
   */
  public static KernelPlan render(Map<String, ? extends NodeGatewayState> gateways, DataplaneSettings s,
      String nameSets) {
    List<String> tunnelled = tunnelled(gateways, s);
    Map<String, Integer> slots = slots(tunnelled, s.dropSlot() - 1);
    var parts = new Parts(s, slots, nameSets);
    new TreeMap<>(gateways).forEach(parts::add);
    var routes = new TreeSet<Route>();
    var markRules = new TreeSet<MarkRule>();
    for (String egressIP : tunnelled) {
      int slot = slots.get(egressIP);
      int table = s.tableBase() + slot;
      routes.add(new Route(table, "unicast", "default", egressIP));
      // The tunnel's own (outer) packet keeps the mark: send it back to the main table instead of into the tunnel.
      routes.add(new Route(table, "throw", egressIP, null));
      markRules.add(new MarkRule(s.mark(slot), table));
    }
    return new KernelPlan(parts.sets, parts.chains(), parts.held, routes, markRules, true,
        new TreeMap<>(s.tunnelSysctls()));
  }

  /** The egress IPs this node steers to through the tunnel, in order; more than the mark mask holds is an error. */
  static List<String> tunnelled(Map<String, ? extends NodeGatewayState> gateways, DataplaneSettings s) {
    List<String> tunnelled = gateways.values().stream().flatMap(g -> g.steer.stream())
        .filter(st -> st.gatewayNode != null && st.egressIP != null).map(st -> st.egressIP).distinct()
        .sorted(IpAddresses.ORDER).toList();
    if (tunnelled.size() >= s.dropSlot()) {
      throw new IllegalArgumentException("this node steers to " + tunnelled.size()
          + " egress IPs; the mark mask 0x" + Integer.toHexString(s.markMask()) + " has room for " + (s.dropSlot() - 1));
    }
    return tunnelled;
  }

  /** The sets and rules of every gateway, gathered gateway by gateway, then put in their chains in order. */
  private static final class Parts {
    private final DataplaneSettings s;
    private final Map<String, Integer> slots;
    private final String nameSets;
    final TreeMap<String, IpSet> sets = new TreeMap<>();
    final TreeSet<String> held = new TreeSet<>();
    private final List<String> mangle = new ArrayList<>();
    /** Planned moves, on the node taking the IP: what arrives for it that no connection here knows (see below). */
    private final List<String> strays = new ArrayList<>();
    private final List<String> snat = new ArrayList<>();
    private final List<String> invalid = new ArrayList<>();
    private final List<String> tunnelAccept = new ArrayList<>();
    private final List<String> allowJumps = new ArrayList<>();
    private final List<String> allowRules = new ArrayList<>();

    Parts(DataplaneSettings s, Map<String, Integer> slots, String nameSets) {
      this.s = s;
      this.slots = slots;
      this.nameSets = nameSets;
    }

    void add(String gateway, NodeGatewayState g) {
      String cidrs = "natgate-c-" + id(gateway);
      String excluded = "natgate-x-" + id(gateway);
      sets.put(cidrs, new IpSet(cidrs, "hash:net", netMembers(g.cidrs)));
      sets.put(excluded, new IpSet(excluded, "hash:net", netMembers(g.excludedCidrs)));
      String destinations = " -m set --match-set " + cidrs + " dst -m set ! --match-set " + excluded + " dst";
      g.snat.forEach(sn -> snat(gateway, sn, destinations, g.connectionLog != null));
      if (g.peers != null) {
        g.snat.stream().filter(sn -> sn.holdAddress).forEach(sn -> forwardStrays(sn.egressIP, g.peers));
      }
      if (g.allow != null && !g.snat.isEmpty()) {
        // The DNS path fills these; they come and go with the gateway role, their members are left alone.
        g.allow.stream().filter(e -> e.fqdn != null && nameSets != null)
            .map(e -> DestinationSets.fqdn(gateway, e.fqdn)).distinct()
            .forEach(name -> sets.put(name, IpSet.dynamic(name, nameSets)));
        g.snat.forEach(sn -> allow(gateway, g, sn, destinations));
      }
      for (NodeGatewayState.Steer st : g.steer) {
        boolean hasGateway = st.gatewayNode != null && st.egressIP != null;
        if (hasGateway || g.failurePolicy != FailurePolicy.Allow) {
          // (no gateway with Allow: falling back to the node's own masquerade is allowed; the CNI path stays alone)
          steer(gateway, st, hasGateway, destinations);
        }
      }
    }

    /**
     * Gateway role: SNAT the egress IP's sources (marking their connections for the connection log when it is on),
     * drop their INVALID packets, accept them from the tunnel.
     */
    private void snat(String gateway, NodeGatewayState.Snat sn, String destinations, boolean logged) {
      String sources = "natgate-s-" + id(gateway + "/" + sn.egressIP);
      sets.put(sources, new IpSet(sources, "hash:ip", List.copyOf(sn.sources)));
      String match = " -m set --match-set " + sources + " src" + destinations;
      if (logged) {
        // The connection log listens to conntrack events of connections with this mark only (io.natgate.connlog).
        snat.add("-A " + Hook.NAT_POSTROUTING.chain + " -o " + s.uplink() + match
            + " -m conntrack --ctdir ORIGINAL -j CONNMARK --set-xmark " + DataplaneSettings.logMark());
      }
      String snatTo = " -m conntrack --ctdir ORIGINAL -j SNAT --to-source " + sn.egressIP;
      if (!s.snatPorts().equals(SnatPorts.KERNEL)) {
        // iptables takes a port range only with a protocol that has ports; the rule below takes the rest (ICMP).
        for (String protocol : SnatPorts.PROTOCOLS) {
          snat.add("-A " + Hook.NAT_POSTROUTING.chain + " -o " + s.uplink() + " -p " + protocol + match + snatTo
              + s.snatPorts().toSourceSuffix());
        }
      }
      snat.add("-A " + Hook.NAT_POSTROUTING.chain + " -o " + s.uplink() + match + snatTo);
      // A packet conntrack calls INVALID (say, the middle of a connection that began on the previous gateway) skips
      // the nat table: it would leave with the pod's own address. Drop it instead.
      invalid.add("-A " + Hook.FILTER_FORWARD.chain + " -o " + s.uplink() + " -m set --match-set " + sources
          + " src -m conntrack --ctstate INVALID -j DROP");
      tunnelAccept.add("-A " + Hook.FILTER_FORWARD.chain + " -i " + s.tunnelDevice() + " -o " + s.uplink() + match
          + " -j RETURN");
      if (sn.holdAddress) {
        held.add(sn.egressIP);
      }
    }

    /**
     * A planned move is make-before-break: the releasing node keeps the IP while this node announces it, and the
     * neighbours (the next hop, the directors) switch to this node when they get its gratuitous ARP. Connections the
     * releasing node translated just before still get their replies here, where no conntrack entry knows them: this
     * node's own stack would answer them with a reset. So, until the move is over, a TCP or UDP packet for the IP
     * that no connection here knows (INVALID or NEW: a reply without its start) is copied to the releasing node
     * (whose conntrack translates it back) and dropped here; the tunnel's own packets, addressed to the same IP, are
     * left alone. One way only (the releasing node forwards nothing), so nothing goes back and forth.
     */
    private void forwardStrays(String egressIP, NodeGatewayState.Peers peers) {
      peers.successions.stream().filter(x -> egressIP.equals(x.egressIP) && x.releasing != null)
          .flatMap(x -> peers.members.stream().filter(m -> x.releasing.equals(m.name) && m.ip != null))
          .findFirst().ifPresent(releasing -> {
            for (String unknown : unknownArrivals(egressIP, s)) {
              strays.add(unknown + "TEE --gateway " + releasing.ip);
              strays.add(unknown + "DROP");
            }
          });
    }

    /**
     * Gateway role with an allow list: new connections of the egress IP's sources to destinations that go through
     * the gateway are checked against it (locally started ones and tunnelled ones alike).
     */
    private void allow(String gateway, NodeGatewayState g, NodeGatewayState.Snat sn, String destinations) {
      String sources = "natgate-s-" + id(gateway + "/" + sn.egressIP);
      allowJumps.add("-A " + Hook.FILTER_FORWARD.chain + " -o " + s.uplink() + " -m set --match-set " + sources
          + " src" + destinations + " -m conntrack --ctstate NEW -j " + Hook.FILTER_ALLOW.chain);
      allowRules.addAll(AllowRules.render(gateway, g.allow, sources, sn.egressIP, g.connectionLog != null, nameSets));
    }

    /** Director role: mark the sources' packets with their egress IP's slot (or the drop slot without a gateway). */
    private void steer(String gateway, NodeGatewayState.Steer st, boolean hasGateway, String destinations) {
      int slot = hasGateway ? slots.get(st.egressIP) : s.dropSlot();
      String sources = "natgate-d-" + id(gateway + "/" + Objects.requireNonNullElse(st.egressIP, ""));
      sets.put(sources, new IpSet(sources, "hash:ip", List.copyOf(st.sources)));
      mangle.add("-A " + Hook.MANGLE_PREROUTING.chain + " -m set --match-set " + sources + " src" + destinations
          + " -j MARK --set-xmark " + s.mark(slot));
    }

    /**
     * The gateways' rules in natgate's chains, around the rules that are the same in every plan (the base's, see
     * {@link Renderer#base}): each of those matches only packets natgate marked (or whose connection it marked), or
     * that use its tunnel, so that they change nothing on a node with no gateway, and a director's first steered pod
     * adds only its mark rule (no nat run at all).
     */
    Map<Hook, List<String>> chains() {
      String tun = s.tunnelDevice();
      var marks = new ArrayList<>(strays);
      marks.addAll(mangle);
      // Remember in the connection that it was steered (see the drop of unmarked ones below).
      marks.add("-A " + Hook.MANGLE_PREROUTING.chain + " -m mark ! --mark " + s.mark(0)
          + " -j CONNMARK --save-mark --nfmask 0x" + Integer.toHexString(s.markMask()) + " --ctmask 0x"
          + Integer.toHexString(s.markMask()));
      var nat = new ArrayList<String>();
      // Steered packets leave through the tunnel un-NATed: the gateway SNATs them. Keep them from the CNI's
      // masquerade.
      nat.add("-A " + Hook.NAT_POSTROUTING.chain + " -m mark ! --mark " + s.mark(0) + " -j ACCEPT");
      nat.addAll(snat);
      var filter = new ArrayList<String>();
      // Fail closed, one constant rule: whatever carries a natgate mark and does not leave through the tunnel (no
      // gateway: the drop mark has no route; or a mark whose route is not in place yet) is dropped. Being
      // constant, it never leaves a window while marks and routes change.
      filter.add("-A " + Hook.FILTER_FORWARD.chain + " ! -o " + tun + " -m mark ! --mark " + s.mark(0) + " -j DROP");
      // A connection that was steered and whose packets are not any more (its pod no longer selected, this node now
      // its gateway, or its gateway gone) was set up without NAT for the tunnel: the rest of it would leave with the
      // pod's own address.
      filter.add("-A " + Hook.FILTER_FORWARD.chain + " -o " + s.uplink() + " -m conntrack --ctdir ORIGINAL"
          + " -m connmark ! --mark " + s.mark(0) + " -m mark --mark " + s.mark(0) + " -j DROP");
      filter.addAll(invalid);
      filter.addAll(allowJumps);
      filter.addAll(tunnelAccept);
      // Whatever arrives through the tunnel and is not SNATed here (not, or no longer, this node's egress IP) is
      // dropped.
      filter.add("-A " + Hook.FILTER_FORWARD.chain + " -i " + tun + " -j DROP");
      var rules = new EnumMap<Hook, List<String>>(Hook.class);
      rules.put(Hook.MANGLE_PREROUTING, List.copyOf(marks));
      rules.put(Hook.MANGLE_FORWARD, List.of("-A " + Hook.MANGLE_FORWARD.chain + " -o " + tun
          + " -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu"));
      rules.put(Hook.NAT_POSTROUTING, List.copyOf(nat));
      rules.put(Hook.FILTER_FORWARD, List.copyOf(filter));
      if (!allowRules.isEmpty()) {
        rules.put(Hook.FILTER_ALLOW, List.copyOf(allowRules));
      }
      return rules;
    }
  }

  /**
   * The TCP and UDP packets for {@code egressIP} arriving on the uplink that no connection here knows (INVALID or NEW:
   * a reply without its start), but the tunnel's own: each rule up to its target ("... -j ").
   */
  private static List<String> unknownArrivals(String egressIP, DataplaneSettings s) {
    String to = "-A " + Hook.MANGLE_PREROUTING.chain + " -d " + egressIP + "/32 -i " + s.uplink();
    String unknown = " -m conntrack --ctstate INVALID,NEW -j ";
    return List.of(to + " -p tcp" + unknown, to + " -p udp -m udp ! --dport " + s.tunnelPort() + unknown);
  }

  /**
   * The plan of a node that stops for a restart and hands {@code handedOver} to other nodes: what arrives for those
   * IPs that no connection here knows is dropped. The node taking one over copies here the replies it does not know
   * ({@code forwardStrays}); this node's connections translate theirs back, and anything else, passed on, would go
   * back to that node and be copied here again, until its TTL ran out. Left in the kernel until the next agent's
   * first apply, when the taking node stops forwarding too.
   */
  public static KernelPlan handingOver(KernelPlan plan, Set<String> handedOver, DataplaneSettings s) {
    if (handedOver.isEmpty()) {
      return plan;
    }
    var mangle = new ArrayList<String>();
    new TreeSet<>(handedOver).forEach(ip -> unknownArrivals(ip, s).forEach(unknown -> mangle.add(unknown + "DROP")));
    mangle.addAll(plan.rules().getOrDefault(Hook.MANGLE_PREROUTING, List.of()));
    return plan.withRules(Hook.MANGLE_PREROUTING, mangle);
  }

  /**
   * Mark value (1..room) per tunnelled egress IP, from a hash of the IP (probing on collision), so that an egress
   * IP keeps its mark and table while others come and go: no window where a mark points at another IP's tunnel.
   */
  static Map<String, Integer> slots(List<String> egressIPs, int room) {
    Map<String, Integer> slots = new TreeMap<>();
    Set<Integer> used = new java.util.HashSet<>();
    for (String ip : egressIPs) {
      int slot = Integer.remainderUnsigned(Integer.parseUnsignedInt(id(ip), 16), room) + 1;
      while (!used.add(slot)) {
        slot = slot % room + 1;
      }
      slots.put(ip, slot);
    }
    return slots;
  }

  /** ipset's hash:net cannot hold a /0: cover it with its two halves. */
  static List<String> netMembers(List<String> cidrs) {
    Set<String> members = new LinkedHashSet<>();
    for (String cidr : cidrs) {
      if (cidr.endsWith("/0")) {
        members.add("0.0.0.0/1");
        members.add("128.0.0.0/1");
      } else {
        members.add(cidr);
      }
    }
    return List.copyOf(members);
  }

  /** Short stable id: kernel names are short (ipset 31, chains 28, devices 15 characters) and gateway names long. */
  static String id(String key) {
    return Sha256.hex(key, 4);
  }
}
