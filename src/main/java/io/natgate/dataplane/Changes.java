package io.natgate.dataplane;

import io.natgate.dataplane.KernelPlan.IpSet;
import io.natgate.dataplane.KernelPlan.MarkRule;
import io.natgate.dataplane.KernelPlan.Route;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * What to run to take a node's kernel from what was observed to the plan (pure). Each step is one process:
 * <ol>
 * <li>{@link #release}: {@code ip -batch} removing egress IPs this node must no longer hold (first: never two holders)
 * <li>{@link #ipBefore}: {@code ip -batch} creating the tunnel and adding policy rules and routes; then the kernel
 * settings ({@link #sysctls}) that differ from the plan's, one write each
 * <li>{@link #ipsetBefore}: {@code ipset -exist restore} creating sets and adding new members
 * <li>{@link #iptables}: {@code iptables-restore --noflush}, rewriting only our chains that differ and their jumps, in
 * up to three runs because each table commits on its own: nat gains new SNAT rules first (keeping the old ones),
 * then mangle and filter change, then nat loses what is no longer wanted. A packet that filter lets through always
 * finds its SNAT rule; none is ever left to the CNI's masquerade.
 * <li>{@link #hold}: {@code ip -batch} adding egress IPs, once the rules that SNAT to them are in place
 * <li>{@link #ipsetAfter} and {@link #ipAfter}: removing members no longer wanted, destroying what the rules no
 * longer reference
 * </ol>
 * Members leave their sets only once the new rules are in: a pod that changes role on this node (its SNAT set here
 * to a steer set, say, when another node takes the egress IP over) is in both sets meanwhile, never in neither
 * (for as long as the rules that match the new set are not there yet, it would be the CNI's masquerade's).
 * An empty string means there is nothing to do in that step.
 */
public record Changes(String release, String ipBefore, Map<String, String> sysctls, String ipsetBefore,
    List<String> iptables, String hold, List<String> announce, String ipsetAfter, String ipAfter) {

  /** VXLAN-GPE adds 36 bytes of headers (outer IPv4, UDP, VXLAN); leave some room for options. */
  static final int TUNNEL_OVERHEAD = 50;
  static final String SET_OPTIONS = "family inet hashsize 1024 maxelem 1048576";
  /** A dynamic set's members carry their own timeout (the default, 0, keeps a member without one forever). */
  static final String DYNAMIC_SET_OPTIONS = " timeout 0";

  public boolean isEmpty() {
    return release.isEmpty() && ipBefore.isEmpty() && sysctls.isEmpty() && ipsetBefore.isEmpty() && iptables.isEmpty() && hold.isEmpty()
        && ipsetAfter.isEmpty() && ipAfter.isEmpty();
  }

  public static Changes between(Observed now, KernelPlan plan, DataplaneSettings s) {
    List<String> announce = plan.held().stream().filter(ip -> !now.uplinkAddresses().contains(ip)).toList();
    return new Changes(release(now, plan, s), ipBefore(now, plan, s), sysctls(now, plan), ipsetBefore(now, plan),
        iptables(now, plan), hold(announce, s), announce, ipsetAfter(now, plan), ipAfter(now, plan, s));
  }

  /** The egress IPs recorded as ours that this node must no longer hold (only those still on the uplink). */
  static String release(Observed now, KernelPlan plan, DataplaneSettings s) {
    var out = new StringBuilder();
    for (String ip : new TreeSet<>(previouslyHeld(now))) {
      if (!plan.held().contains(ip) && now.uplinkAddresses().contains(ip)) {
        out.append(releaseAddress(ip, s));
      }
    }
    return out.toString();
  }

  /**
   * Removes an egress IP from the uplink whether or not it is still there: a fence runs beside an apply and may have
   * removed it first ({@code address del} would fail the apply with "Cannot assign requested address").
   */
  static String releaseAddress(String ip, DataplaneSettings s) {
    return "address flush dev " + s.uplink() + " to " + ip + "/32\n";
  }

  /** The tunnel device when it is missing, then missing policy rules and routes (replacing a changed route). */
  static String ipBefore(Observed now, KernelPlan plan, DataplaneSettings s) {
    String tun = s.tunnelDevice();
    var out = new StringBuilder();
    if (plan.tunnel() && !now.tunnel()) {
      out.append("link add ").append(tun).append(" type vxlan gpe external dstport ").append(s.tunnelPort())
          .append('\n')
          .append("link set ").append(tun).append(" mtu ").append(now.uplinkMtu() - TUNNEL_OVERHEAD).append(" up\n")
          .append("address add ").append(DataplaneSettings.TUNNEL_ADDRESS).append("/32 dev ").append(tun).append('\n');
    }
    String proto = " proto " + DataplaneSettings.ROUTE_PROTOCOL;
    for (MarkRule r : plan.markRules()) {
      if (!now.markRules().contains(r)) {
        out.append("rule add pref ").append(s.rulePriority()).append(" fwmark ").append(r.mark())
            .append(" lookup ").append(r.table()).append(proto).append('\n');
      }
    }
    for (Route r : plan.routes()) {
      if (!now.routes().contains(r)) {
        out.append("route replace ").append(routeSpec(r, tun)).append(proto).append('\n');
      }
    }
    return out.toString();
  }

  /** The kernel settings whose value differs from the plan's (or that are not there yet). */
  static Map<String, String> sysctls(Observed now, KernelPlan plan) {
    Map<String, String> out = new TreeMap<>();
    plan.sysctls().forEach((key, value) -> {
      if (!value.equals(now.sysctls().get(key))) {
        out.put(key, value);
      }
    });
    return out;
  }

  /** New sets, members added, and the held set recording each IP before it is added. */
  static String ipsetBefore(Observed now, KernelPlan plan) {
    var out = new StringBuilder();
    for (IpSet set : plan.sets().values()) {
      Set<String> current = now.sets().get(set.name());
      if (current == null) {
        out.append("create ").append(set.name()).append(' ').append(set.type()).append(' ').append(SET_OPTIONS)
            .append(set.dynamic() ? DYNAMIC_SET_OPTIONS : "").append('\n');
        set.members().forEach(m -> out.append("add ").append(set.name()).append(' ').append(m).append('\n'));
      } else if (!set.dynamic()) {
        // Only the difference: a one-pod change costs one line, whatever the size of the set. Removals come after
        // the rules (ipsetAfter).
        set.members().stream().filter(m -> !current.contains(m))
            .forEach(m -> out.append("add ").append(set.name()).append(' ').append(m).append('\n'));
      }
    }
    String heldSet = DataplaneSettings.HELD_SET;
    if (!plan.isEmpty() && now.held() == null) {
      out.append("create ").append(heldSet).append(" hash:ip ").append(SET_OPTIONS).append('\n');
    }
    Set<String> previouslyHeld = previouslyHeld(now);
    out.append(recordHeld(plan.held().stream().filter(ip -> !previouslyHeld.contains(ip)).toList()));
    return out.toString();
  }

  /** The held set's records of egress IPs, written before they are added to the uplink (ipset restore lines). */
  static String recordHeld(List<String> ips) {
    var out = new StringBuilder();
    ips.forEach(ip -> out.append("add ").append(DataplaneSettings.HELD_SET).append(' ').append(ip).append('\n'));
    return out.toString();
  }

  /**
   * The egress IPs to add to the uplink (those not there yet as last seen). {@code replace} also succeeds when the
   * address is there after all (put back since, by a lifetime renewal that raced a fence), where {@code add} would
   * fail the apply with "Address already assigned".
   */
  static String hold(List<String> ips, DataplaneSettings s) {
    var out = new StringBuilder();
    ips.forEach(ip -> out.append("address replace ").append(ip).append("/32").append(s.addressOptions()).append('\n'));
    return out.toString();
  }

  /**
   * Members removed from the sets that stay, once the rules have changed: a pod that moves from one set to another
   * (steered to another egress IP, or SNATed here instead) is never in neither meanwhile, which would leave its new
   * connections to the CNI's masquerade; the rules that use its new set may only come with the iptables step. Then
   * the sets no rule references any more, and held-set records of IPs released.
   */
  static String ipsetAfter(Observed now, KernelPlan plan) {
    var out = new StringBuilder();
    for (IpSet set : plan.sets().values()) {
      Set<String> current = now.sets().get(set.name());
      if (current != null && !set.dynamic()) {
        // A HashSet, not Set.copyOf: the immutable set probes linearly, and IP strings' hash codes are nearly
        // consecutive, so its lookups walk long runs (tens of ms at 50,000 members instead of about one).
        Set<String> wanted = new HashSet<>(set.members());
        current.stream().filter(m -> !wanted.contains(m)).sorted()
            .forEach(m -> out.append("del ").append(set.name()).append(' ').append(m).append('\n'));
      }
    }
    String heldSet = DataplaneSettings.HELD_SET;
    new TreeSet<>(now.sets().keySet()).stream().filter(name -> !plan.sets().containsKey(name))
        .forEach(name -> out.append("destroy ").append(name).append('\n'));
    if (plan.isEmpty() && now.held() != null) {
      out.append("destroy ").append(heldSet).append('\n');
    } else {
      new TreeSet<>(previouslyHeld(now)).stream().filter(ip -> !plan.held().contains(ip))
          .forEach(ip -> out.append("del ").append(heldSet).append(' ').append(ip).append('\n'));
    }
    return out.toString();
  }

  /** Policy rules and routes no longer wanted (a route replaced in place stays), then the tunnel if unwanted. */
  static String ipAfter(Observed now, KernelPlan plan, DataplaneSettings s) {
    var out = new StringBuilder();
    for (MarkRule r : now.markRules()) {
      if (!plan.markRules().contains(r)) {
        out.append("rule del pref ").append(s.rulePriority()).append(" fwmark ").append(r.mark())
            .append(" lookup ").append(r.table()).append('\n');
      }
    }
    for (Route r : now.routes()) {
      boolean replaced = plan.routes().stream().anyMatch(p -> p.table() == r.table() && p.type().equals(r.type())
          && p.dst().equals(r.dst()));
      if (!plan.routes().contains(r) && !replaced) {
        out.append("route del ").append(r.type().equals("throw") ? "throw " : "").append(r.dst())
            .append(" table ").append(r.table()).append('\n');
      }
    }
    if (!plan.tunnel() && now.tunnel()) {
      out.append("link del ").append(s.tunnelDevice()).append('\n');
    }
    return out.toString();
  }

  private static Set<String> previouslyHeld(Observed now) {
    return now.held() == null ? Set.of() : now.held();
  }

  /** The iptables-restore runs, in order (see the class comment); none when nothing differs. */
  static List<String> iptables(Observed now, KernelPlan plan) {
    List<String> wantedNat = plan.rules().get(Hook.NAT_POSTROUTING);
    List<String> existingNat = now.chains().get(Hook.NAT_POSTROUTING);
    List<String> runs = new ArrayList<>();
    if (wantedNat != null && !wantedNat.equals(existingNat)) {
      // Additions first: the wanted rules plus every existing one, so that nothing is lost before the gates change.
      List<String> union = new ArrayList<>(wantedNat);
      if (existingNat != null) {
        existingNat.stream().filter(r -> !wantedNat.contains(r)).forEach(union::add);
      }
      var first = new java.util.EnumMap<>(now.chains());
      first.put(Hook.NAT_POSTROUTING, union);
      String additions = restore(now, first, Set.of("nat"));
      if (!additions.isEmpty()) {
        runs.add(additions);
      }
      var jumps = new java.util.EnumMap<>(now.jumps());
      jumps.put(Hook.NAT_POSTROUTING, List.of(0));
      now = new Observed(first, jumps, now.sets(), now.held(), now.uplinkAddresses(), now.routes(),
          now.markRules(), now.tunnel(), now.uplinkMtu(), now.sysctls());
    }
    String gates = restore(now, plan.rules(), Set.of("mangle", "filter"));
    if (!gates.isEmpty()) {
      runs.add(gates);
    }
    String nat = restore(now, plan.rules(), Set.of("nat"));
    if (!nat.isEmpty()) {
      runs.add(nat);
    }
    return List.copyOf(runs);
  }

  /** Restore text for the given tables: our chains that differ are rewritten whole, jumps put first. */
  static String restore(Observed now, Map<Hook, List<String>> rules, Set<String> tables) {
    var out = new StringBuilder();
    for (String table : List.of("mangle", "nat", "filter")) {
      if (!tables.contains(table)) {
        continue;
      }
      var declarations = new StringBuilder(); // declaring a chain creates it, or flushes it when it exists
      var commands = new StringBuilder();
      for (Hook h : Hook.values()) {
        if (!h.table.equals(table)) {
          continue;
        }
        List<String> wanted = rules.get(h);
        List<String> existing = now.chains().get(h);
        List<Integer> jumps = now.jumps().getOrDefault(h, List.of());
        String deleteJumps = ("-D " + h.builtin + " -j " + h.chain + "\n").repeat(jumps.size());
        if (wanted == null) {
          commands.append(deleteJumps);
          if (existing != null) {
            declarations.append(':').append(h.chain).append(" - [0:0]\n");
            commands.append("-X ").append(h.chain).append('\n');
          }
          continue;
        }
        if (!Objects.equals(existing, wanted)) {
          declarations.append(':').append(h.chain).append(" - [0:0]\n");
          wanted.forEach(r -> commands.append(r).append('\n'));
        }
        if (h.jumpedFromBuiltin() && !jumps.equals(List.of(0))) {
          commands.append(deleteJumps).append("-I ").append(h.builtin).append(" 1 -j ").append(h.chain).append('\n');
        }
      }
      if (!declarations.isEmpty() || !commands.isEmpty()) {
        out.append('*').append(table).append('\n').append(declarations).append(commands).append("COMMIT\n");
      }
    }
    return out.toString();
  }

  static String routeSpec(Route r, String tunnelDevice) {
    String where = r.type().equals("throw") ? "throw " + r.dst()
        : r.dst() + " dev " + tunnelDevice + " encap ip id " + DataplaneSettings.TUNNEL_VNI + " dst " + r.remote();
    return where + " table " + r.table();
  }
}
