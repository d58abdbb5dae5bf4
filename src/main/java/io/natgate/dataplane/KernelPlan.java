package io.natgate.dataplane;

import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SortedMap;
import java.util.SortedSet;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Everything natgate wants in one node's kernel, as values. Rules are written exactly as {@code iptables-save}
 * prints them, so the kernel's copy can be compared line by line.
 *
 * @param sets  ipsets by name
 * @param rules our chains' rules, in order ({@code -A NATGATE-... ...}); empty map: no chains at all
 * @param held  egress IPs held as /32 addresses on the uplink
 * @param routes routes in natgate's tables
 * @param markRules policy rules sending a mark to its table
 * @param tunnel whether the tunnel device exists
 * @param sysctls kernel settings ({@code net.ipv4.conf.natgate0.rp_filter} = "2"), observed and repaired like the rest
 */
public record KernelPlan(SortedMap<String, IpSet> sets, Map<Hook, List<String>> rules, SortedSet<String> held,
    SortedSet<Route> routes, SortedSet<MarkRule> markRules, boolean tunnel, SortedMap<String, String> sysctls) {

  private static final String TO_SOURCE = "-j SNAT --to-source ";

  public static final KernelPlan EMPTY = new KernelPlan(new TreeMap<>(), new EnumMap<>(Hook.class), new TreeSet<>(),
      new TreeSet<>(), new TreeSet<>(), false, new TreeMap<>());

  public boolean isEmpty() {
    return rules.isEmpty() && sets.isEmpty() && held.isEmpty() && routes.isEmpty() && markRules.isEmpty() && !tunnel;
  }

  /** This plan with {@code hook}'s rules replaced by {@code hookRules}. */
  public KernelPlan withRules(Hook hook, List<String> hookRules) {
    var all = new EnumMap<Hook, List<String>>(Hook.class);
    all.putAll(rules);
    all.put(hook, List.copyOf(hookRules));
    return new KernelPlan(sets, all, held, routes, markRules, tunnel, sysctls);
  }

  /** This plan with {@code set} added (or replacing the set of its name). */
  public KernelPlan withSet(IpSet set) {
    var all = new TreeMap<>(sets);
    all.put(set.name(), set);
    return new KernelPlan(all, rules, held, routes, markRules, tunnel, sysctls);
  }

  public int ruleCount() {
    return rules.values().stream().mapToInt(List::size).sum();
  }

  /** The egress IPs the SNAT rules translate to, held here or not (a standby's are ready before it holds them). */
  public Set<String> translatedTo() {
    Set<String> ips = new TreeSet<>();
    for (String rule : rules.getOrDefault(Hook.NAT_POSTROUTING, List.of())) {
      int at = rule.indexOf(TO_SOURCE);
      if (at >= 0) {
        ips.add(rule.substring(at + TO_SOURCE.length()).split("[ :]", 2)[0]); // without a port range
      }
    }
    return ips;
  }

  /**
   * Egress IPs held here while this node's own pods are steered toward them already: a planned move hands them to
   * another node (make-before-break), which announces them now. This node must not announce them any more: its
   * gratuitous ARP would turn the neighbours back to an address it is about to remove.
   */
  public Set<String> handingOver() {
    Set<String> ips = new TreeSet<>();
    routes.stream().filter(r -> r.remote() != null && held.contains(r.remote())).forEach(r -> ips.add(r.remote()));
    return ips;
  }

  public int setMembers() {
    return sets.values().stream().mapToInt(s -> s.members().size()).sum();
  }

  /**
   * @param type    hash:ip, hash:net, or hash:net,net
   * @param dynamic created and destroyed by natgate, but its members are someone else's (the DNS path adds them with
   *                their own timeouts): never compared, added or removed by an apply or a repair
   */
  public record IpSet(String name, String type, List<String> members, boolean dynamic) {
    public IpSet(String name, String type, List<String> members) {
      this(name, type, members, false);
    }

    public static IpSet dynamic(String name, String type) {
      return new IpSet(name, type, List.of(), true);
    }
  }

  /**
   * A route in one of natgate's tables: the tunnel default route (type unicast, dst default, remote = the egress IP)
   * or a throw route for the egress IP itself (remote null).
   */
  public record Route(int table, String type, String dst, String remote) implements Comparable<Route> {
    @Override
    public int compareTo(Route o) {
      return toString().compareTo(o.toString());
    }
  }

  public record MarkRule(String mark, int table) implements Comparable<MarkRule> {
    @Override
    public int compareTo(MarkRule o) {
      return Integer.compare(table, o.table) != 0 ? Integer.compare(table, o.table) : mark.compareTo(o.mark);
    }
  }
}
