package io.natgate.dataplane;

import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;

/**
 * The connections a node steered to a gateway, as conntrack lists them: their entries carry a natgate mark (see
 * {@link Renderer}) and were set up without NAT, because the gateway translates them. Once natgate's rules are gone
 * (uninstall), the next packets of such a connection would leave with the pod's own address; deleting their entries
 * makes those packets start new ones, which the node's own masquerade takes, as without natgate.
 */
final class SteeredConnections {
  private static final Pattern MARK = Pattern.compile("\\bmark=(\\d+)\\b");

  private SteeredConnections() {}

  /** The distinct conntrack marks in {@code conntrack -L} output that have any of natgate's {@code markMask} bits. */
  static Set<Long> marks(String listing, int markMask) {
    var marks = new TreeSet<Long>();
    var m = MARK.matcher(listing);
    while (m.find()) {
      long mark = Long.parseLong(m.group(1));
      if ((mark & Integer.toUnsignedLong(markMask)) != 0) {
        marks.add(mark);
      }
    }
    return marks;
  }

  /** Deletes the entries with exactly this mark (one command per mark: conntrack filters on equality only). */
  static String[] delete(long mark) {
    return new String[] {"conntrack", "-D", "-f", "ipv4", "-m", Long.toString(mark)};
  }
}
