package io.natgate.dataplane;

import java.util.Map;
import java.util.TreeMap;

/**
 * Names of the kernel sets that hold what a gateway's allow list resolves to. The gateway role creates them and
 * matches them; the DNS path fills them, so both name them here.
 */
public final class DestinationSets {
  /** (pod IP, address) pairs, each member with its own timeout: {@code ipset add SET POD,ADDR timeout S -exist}. */
  public static final String TYPE = "hash:net,net";

  private DestinationSets() {
  }

  /**
   * The set (hash:net,net with per-entry timeouts) of the (pod IP, address) pairs that pod was answered for one DNS
   * name of the allow list. Keyed by the name, not the entry's position, so that reordering the list keeps them.
   */
  public static String fqdn(String gateway, String fqdn) {
    return "natgate-f-" + Renderer.id(gateway + "/" + fqdn);
  }

  /** The number of members of each of natgate's names' sets, from {@code ipset list -t} (headers only: cheap). */
  public static Map<String, Integer> entries(String ipsetListTerse) {
    Map<String, Integer> entries = new TreeMap<>();
    String name = null;
    for (String line : ipsetListTerse.split("\n")) {
      if (line.startsWith("Name: ")) {
        name = line.substring(6).trim();
      } else if (line.startsWith("Number of entries: ") && name != null && name.startsWith("natgate-f-")) {
        entries.put(name, Integer.parseInt(line.substring(19).trim()));
      }
    }
    return entries;
  }
}
