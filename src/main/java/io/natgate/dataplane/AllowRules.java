package io.natgate.dataplane;

import io.natgate.Defaults;
import io.natgate.api.v1alpha1.AllowEntry;
import io.natgate.api.v1alpha1.PortRange;
import io.natgate.api.v1alpha1.Protocol;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * The rules of {@link Hook#FILTER_ALLOW} for the sources of one egress IP of a gateway with an allow list (pure),
 * written as iptables-save prints them. Only new connections get here (the jump matches conntrack state NEW), so the
 * established ones pay nothing for the list's length.
 */
final class AllowRules {
  /** multiport takes 15 ports per rule; a range counts as two. */
  static final int MULTIPORT_SLOTS = 15;

  private AllowRules() {
  }

  /**
   * Each entry returns (allowed); whatever matched none is logged (when the gateway logs) and refused: a TCP reset,
   * otherwise ICMP administratively prohibited, so that clients fail at once instead of waiting for a timeout.
   *
   * @param sources the set of the pods SNATed to {@code egressIP}
   * @param nameSets the type of the names' sets this kernel has ({@link DestinationSets}); null: none, names allow
   *                 nothing
   */
  static List<String> render(String gateway, List<AllowEntry> allow, String sources, String egressIP, boolean logged,
      String nameSets) {
    String chain = "-A " + Hook.FILTER_ALLOW.chain;
    String source = " -m set --match-set " + sources + " src";
    List<String> rules = new ArrayList<>();
    for (AllowEntry e : allow) {
      if (e.fqdn != null && (nameSets == null || e.ports().isEmpty() && !DestinationSets.holdsEveryPort(nameSets))) {
        continue; // a name this kernel's sets cannot hold allows nothing
      }
      if (e.fqdn != null && !DestinationSets.holdsEveryPort(nameSets)) {
        // the members carry protocol and port: one rule for the name whatever its ports
        rules.add(chain + source + DestinationSets.match(nameSets, DestinationSets.fqdn(gateway, e.fqdn))
            + " -j RETURN");
        continue;
      }
      // iptables-save puts -d and -p ahead of the matches
      String destination = e.cidr == null ? "" : e.cidr.equals("0.0.0.0/0") ? "" : " -d " + e.cidr;
      String answered = e.fqdn == null ? "" : DestinationSets.match(nameSets, DestinationSets.fqdn(gateway, e.fqdn));
      if (e.ports().isEmpty()) {
        rules.add(chain + destination + source + answered + " -j RETURN");
        continue;
      }
      byProtocol(e.ports()).forEach((protocol, ranges) -> {
        for (String ports : multiport(ranges)) {
          rules.add(chain + destination + " -p " + protocol.name().toLowerCase() + source + answered
              + " -m multiport --dports " + ports + " -j RETURN");
        }
      });
    }
    if (logged) {
      rules.add(chain + source + " -j NFLOG --nflog-prefix \"" + deniedPrefix(egressIP) + "\" --nflog-group "
          + Defaults.DENIED_NFLOG_GROUP);
    }
    rules.add(chain + " -p tcp" + source + " -j REJECT --reject-with tcp-reset");
    rules.add(chain + source + " -j REJECT --reject-with icmp-admin-prohibited");
    return rules;
  }

  /** The NFLOG prefix of a refused packet: the egress IP it would have left with (the log names its gateway). */
  static String deniedPrefix(String egressIP) {
    return DataplaneSettings.DENIED_PREFIX + egressIP;
  }

  private static Map<Protocol, List<PortRange>> byProtocol(List<PortRange> ports) {
    Map<Protocol, List<PortRange>> by = new EnumMap<>(Protocol.class);
    ports.forEach(p -> by.computeIfAbsent(p.protocol, k -> new ArrayList<>()).add(p));
    return by;
  }

  /** The ports as multiport lists ("80,8000:8080"), each within {@link #MULTIPORT_SLOTS}. */
  static List<String> multiport(List<PortRange> ranges) {
    List<String> lists = new ArrayList<>();
    var current = new StringBuilder();
    int used = 0;
    for (PortRange r : ranges) {
      boolean range = r.last() != r.port;
      int slots = range ? 2 : 1;
      if (used + slots > MULTIPORT_SLOTS) {
        lists.add(current.toString());
        current.setLength(0);
        used = 0;
      }
      current.append(current.isEmpty() ? "" : ",").append(r.port).append(range ? ":" + r.last() : "");
      used += slots;
    }
    lists.add(current.toString());
    return lists;
  }
}
