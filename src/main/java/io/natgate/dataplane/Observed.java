package io.natgate.dataplane;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.natgate.dataplane.KernelPlan.MarkRule;
import io.natgate.dataplane.KernelPlan.Route;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * natgate's objects as found in a node's kernel (or, between repairs, as the last successful apply left them).
 *
 * @param chains      rules of our chains that exist, in order
 * @param jumps       for each hook, where the jump to our chain sits in the built-in chain (0 = first)
 * @param sets        members of our sets (without {@link DataplaneSettings#HELD_SET})
 * @param held        the egress IPs recorded in {@link DataplaneSettings#HELD_SET}; null when that set is absent
 * @param uplinkAddresses the uplink's /32 addresses
 * @param uplinkMtu   the uplink's MTU (the tunnel's is smaller by the encapsulation)
 * @param sysctls     the kernel settings natgate makes, as found ({@code net.ipv4.conf.natgate0.rp_filter} = "2")
 */
public record Observed(Map<Hook, List<String>> chains, Map<Hook, List<Integer>> jumps, Map<String, Set<String>> sets,
    Set<String> held, Set<String> uplinkAddresses, Set<Route> routes, Set<MarkRule> markRules, boolean tunnel,
    int uplinkMtu, Map<String, String> sysctls) {

  private static final ObjectMapper JSON = new ObjectMapper();

  /** What the last successful apply of {@code plan} left behind: trusted until the next repair looks again. */
  public static Observed after(KernelPlan plan, int uplinkMtu) {
    Map<Hook, List<Integer>> jumps = new EnumMap<>(Hook.class);
    plan.rules().keySet().stream().filter(Hook::jumpedFromBuiltin).forEach(h -> jumps.put(h, List.of(0)));
    Map<String, Set<String>> sets = new HashMap<>();
    plan.sets().forEach((name, set) -> sets.put(name, new HashSet<>(set.members())));
    return new Observed(new EnumMap<>(plan.rules()), jumps, sets, plan.isEmpty() ? null : plan.held(), plan.held(),
        plan.routes(), plan.markRules(), plan.tunnel(), uplinkMtu, plan.sysctls());
  }

  /**
   * Parses the outputs of iptables-save, ipset save, ip -j addr/link, ip route (proto), ip -j rule; {@code sysctls}
   * as read from /proc/sys.
   */
  public static Observed parse(String iptablesSave, String ipsetSave, String addrJson, String linkJson,
      String routes, String rulesJson, DataplaneSettings s, Map<String, String> sysctls) {
    Map<Hook, List<String>> chains = new EnumMap<>(Hook.class);
    Map<Hook, List<Integer>> jumps = new EnumMap<>(Hook.class);
    parseIptables(iptablesSave, chains, jumps);

    Map<String, Set<String>> sets = new TreeMap<>();
    Set<String> held = null;
    for (String line : ipsetSave.split("\n")) {
      // ipset save separates fields by one space; a single-character split takes no regular expression
      String[] f = line.trim().split(" ");
      if (f.length >= 2 && f[1].startsWith("natgate-") && f[0].equals("create")) {
        sets.put(f[1], new HashSet<>());
      } else if (f.length >= 3 && f[0].equals("add") && sets.containsKey(f[1])) {
        sets.get(f[1]).add(f[2]);
      }
    }
    if (sets.containsKey(DataplaneSettings.HELD_SET)) {
      held = sets.remove(DataplaneSettings.HELD_SET);
    }

    Set<String> addresses = new TreeSet<>();
    int mtu = 0;
    boolean tunnel = hasLink(linkJson, s.tunnelDevice());
    for (JsonNode link : json(linkJson)) {
      if (link.path("ifname").asText().equals(s.uplink())) {
        mtu = link.path("mtu").asInt();
      }
    }
    for (JsonNode link : json(addrJson)) {
      for (JsonNode a : link.path("addr_info")) {
        if ("inet".equals(a.path("family").asText()) && a.path("prefixlen").asInt() == 32) {
          addresses.add(a.path("local").asText());
        }
      }
    }

    Set<MarkRule> markRules = new TreeSet<>();
    for (JsonNode r : json(rulesJson)) {
      if (r.path("priority").asInt() == s.rulePriority() && r.has("fwmark")) {
        markRules.add(new MarkRule(r.path("fwmark").asText() + "/" + r.path("fwmask").asText("0xffffffff"),
            r.path("table").asInt()));
      }
    }
    return new Observed(chains, jumps, sets, held, addresses, parseRoutes(routes), markRules, tunnel, mtu,
        Map.copyOf(sysctls));
  }

  /** natgate's chains and jumps in one {@code iptables-save} output, and nothing else: what removing them needs. */
  static Observed iptables(String save) {
    Map<Hook, List<String>> chains = new EnumMap<>(Hook.class);
    Map<Hook, List<Integer>> jumps = new EnumMap<>(Hook.class);
    parseIptables(save, chains, jumps);
    return new Observed(chains, jumps, Map.of(), null, Set.of(), Set.of(), Set.of(), false, 0, Map.of());
  }

  /** Whether {@code ip -j link show} lists a device of that name. */
  static boolean hasLink(String linkJson, String name) {
    for (JsonNode link : json(linkJson)) {
      if (link.path("ifname").asText().equals(name)) {
        return true;
      }
    }
    return false;
  }

  private static void parseIptables(String save, Map<Hook, List<String>> chains, Map<Hook, List<Integer>> jumps) {
    String table = null;
    Map<Hook, Integer> builtinPosition = new EnumMap<>(Hook.class);
    for (String line : save.split("\n")) {
      if (line.startsWith("*")) {
        table = line.substring(1).trim();
        continue;
      }
      for (Hook h : Hook.values()) {
        if (!h.table.equals(table)) {
          continue;
        }
        if (line.startsWith(":" + h.chain + " ")) {
          chains.putIfAbsent(h, new ArrayList<>());
        } else if (line.startsWith("-A " + h.chain + " ")) {
          chains.computeIfAbsent(h, k -> new ArrayList<>()).add(line.trim());
        } else if (h.jumpedFromBuiltin() && line.startsWith("-A " + h.builtin + " ")) {
          int position = builtinPosition.merge(h, 1, Integer::sum) - 1;
          if (line.trim().equals(h.jump())) {
            jumps.computeIfAbsent(h, k -> new ArrayList<>()).add(position);
          }
        }
      }
    }
  }

  /** Lines of {@code ip route show table all proto N}: "throw E table T ..." or "default encap ip ... dst E ... table T". */
  static Set<Route> parseRoutes(String text) {
    Set<Route> routes = new TreeSet<>();
    for (String line : text.split("\n")) {
      List<String> f = List.of(line.trim().split("\\s+"));
      int table = f.indexOf("table");
      if (f.size() < 2 || table < 0) {
        continue;
      }
      boolean isThrow = f.get(0).equals("throw");
      String dst = isThrow ? f.get(1) : f.get(0);
      int encapDst = f.lastIndexOf("dst");
      String remote = !isThrow && encapDst >= 0 ? f.get(encapDst + 1) : null;
      routes.add(new Route(Integer.parseInt(f.get(table + 1)), isThrow ? "throw" : "unicast", dst, remote));
    }
    return routes;
  }

  private static JsonNode json(String text) {
    try {
      return text.isBlank() ? JSON.createArrayNode() : JSON.readTree(text);
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new UncheckedIOException(e);
    }
  }
}
