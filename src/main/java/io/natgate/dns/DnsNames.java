package io.natgate.dns;

import java.util.List;
import java.util.Locale;

/** Which allow-list names a DNS name matches. Pure. */
public final class DnsNames {
  private DnsNames() {
  }

  /** A name as the allow list writes it: lower case, no trailing dot (DNS compares names case-insensitively). */
  public static String normalize(String name) {
    String n = name.toLowerCase(Locale.ROOT);
    return n.endsWith(".") ? n.substring(0, n.length() - 1) : n;
  }

  /**
   * Whether {@code name} is allowed by the entry {@code fqdn}: the same name, or for {@code *.x} any name strictly
   * below x (a.x, a.b.x; not x itself, and not "ax": the wildcard covers whole labels).
   */
  public static boolean matches(String fqdn, String name) {
    String n = normalize(name);
    if (fqdn.startsWith("*.")) {
      String parent = fqdn.substring(1); // ".x"
      return n.length() > parent.length() && n.endsWith(parent);
    }
    return n.equals(fqdn);
  }

  /** The entries of {@code fqdns} that {@code name} matches, in their order. */
  public static List<String> matching(List<String> fqdns, String name) {
    return fqdns.stream().filter(f -> matches(f, name)).toList();
  }
}
