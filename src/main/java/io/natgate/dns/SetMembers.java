package io.natgate.dns;

import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.api.v1alpha1.PortRange;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * How one (pod, address) pair is written into a name's set, by the set's type (pure). The gateway role creates the
 * sets; a kernel without hash:net,net (CONFIG_IP_SET_HASH_NETNET unset, as on the test machines) needs a type that
 * carries the port too, hash:ip,port,ip, with one member per allowed port or range of the name.
 */
public final class SetMembers {
  private SetMembers() {
  }

  /**
   * @param ports the name's allowed ports (empty: every port)
   * @throws IllegalArgumentException a type that cannot hold the pair (a port type with every port allowed)
   */
  public static List<String> of(String type, String pod, String address, List<PortRange> ports) {
    switch (type) {
      case "hash:net,net":
        return List.of(pod + "," + address);
      case "hash:ip,port,ip":
      case "hash:ip,port,net":
        if (ports.isEmpty()) {
          throw new IllegalArgumentException("a set of type " + type + " cannot allow every port");
        }
        List<String> members = new ArrayList<>();
        for (PortRange p : ports) {
          String range = p.endPort == null || p.endPort.equals(p.port) ? String.valueOf(p.port) : p.port + "-" + p.endPort;
          members.add(pod + "," + p.protocol.name().toLowerCase(Locale.ROOT) + ":" + range + "," + address);
        }
        return members;
      default:
        throw new IllegalArgumentException("natgate does not fill sets of type " + type);
    }
  }

  /** The ports a name is allowed on: those of its entries, or every port (empty) when one of them has none. */
  public static List<PortRange> portsOf(NodeGatewayState s, String fqdn) {
    List<PortRange> ports = new ArrayList<>();
    if (s == null || s.allow == null) {
      return ports;
    }
    for (var e : s.allow) {
      if (fqdn.equals(e.fqdn)) {
        if (e.ports == null || e.ports.isEmpty()) {
          return List.of();
        }
        e.ports.stream().filter(p -> !ports.contains(p)).forEach(ports::add);
      }
    }
    return ports;
  }
}
