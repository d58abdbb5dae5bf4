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
  /**
   * For kernels built without {@link #TYPE} (CONFIG_IP_SET_HASH_NETNET unset, as on the machines natgate is tested
   * on): (pod IP, protocol:port, address), one member per allowed port or range. It cannot hold a name allowed on
   * every port: such entries then allow nothing (closed, not open).
   */
  public static final String PORT_TYPE = "hash:ip,port,ip";

  private DestinationSets() {
  }

  /**
   * The set ({@link #TYPE} or {@link #PORT_TYPE}, with per-entry timeouts) of the (pod IP, address) pairs that pod was answered for one DNS
   * name of the allow list. Keyed by the name, not the entry's position, so that reordering the list keeps them.
   */
  public static String fqdn(String gateway, String fqdn) {
    return "natgate-f-" + Renderer.id(gateway + "/" + fqdn);
  }

  /** The set match of a name's set of {@code type}: the pod is the source, the rest the destination. */
  static String match(String type, String set) {
    return " -m set --match-set " + set + (PORT_TYPE.equals(type) ? " src,dst,dst" : " src,dst");
  }

  /** Whether a name's set of {@code type} can hold that name allowed on every port. */
  static boolean holdsEveryPort(String type) {
    return TYPE.equals(type);
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
