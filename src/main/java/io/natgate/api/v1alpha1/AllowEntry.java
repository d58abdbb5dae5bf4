package io.natgate.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.generator.annotation.Size;
import io.fabric8.generator.annotation.ValidationRule;
import java.util.List;
import java.util.Objects;

/** One destination that selected pods may reach through the gateway: a CIDR or a DNS name, on some ports. */
@ValidationRule(value = "has(self.cidr) != has(self.fqdn)", message = "an allow entry must set exactly one of cidr and fqdn")
@JsonInclude(JsonInclude.Include.NON_NULL)
public class AllowEntry {
  /**
   * A lowercase RFC 1123 name of labels of 1-63 letters, digits and '-' (not at either end), dot-separated, without
   * trailing dot; optionally "*." first. (The length of the whole, 253, is the field's maxLength.)
   */
  static final String FQDN = "^([*][.])?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?([.][a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$";

  @JsonPropertyDescription("An IPv4 CIDR without host bits, like 198.51.100.0/24. Exactly one of cidr and fqdn.")
  @Size(max = 18)
  @ValidationRule(value = Destinations.IPV4_CIDR_SELF, message = "cidr must be an IPv4 CIDR like 198.51.100.0/24")
  @ValidationRule(value = "!(" + Destinations.IPV4_CIDR_SELF + ") || cidr(self) == cidr(self).masked()",
      message = "cidr must have no host bits set (10.1.0.0/16, not 10.1.2.3/16)")
  public String cidr;

  @JsonPropertyDescription("A lowercase DNS name without trailing dot, like api.payments.example, or *.payments.example "
      + "for any name below it (not the name itself). The addresses the selected pods themselves are answered for it "
      + "are allowed, for those pods, for the answer's TTL. Exactly one of cidr and fqdn.")
  @Size(min = 1, max = 253)
  @ValidationRule(value = "self.matches('" + FQDN + "')", message = "fqdn must be a lowercase DNS name like "
      + "api.payments.example or *.payments.example: labels of 1-63 letters, digits or '-' (not first or last), "
      + "no trailing dot, '*.' only as the first label")
  @ValidationRule(value = "!isIP(self)", message = "fqdn must be a DNS name, not an IP address: use cidr (a.b.c.d/32)")
  public String fqdn;

  @JsonPropertyDescription("The ports allowed; absent: every port.")
  @Size(min = 1, max = 16)
  public List<PortRange> ports;

  public AllowEntry() {
  }

  public AllowEntry(String cidr, String fqdn, List<PortRange> ports) {
    this.cidr = cidr;
    this.fqdn = fqdn;
    this.ports = ports;
  }

  public static AllowEntry cidr(String cidr, PortRange... ports) {
    return new AllowEntry(cidr, null, ports.length == 0 ? null : List.of(ports));
  }

  public static AllowEntry fqdn(String fqdn, PortRange... ports) {
    return new AllowEntry(null, fqdn, ports.length == 0 ? null : List.of(ports));
  }

  /** The ports allowed; empty: every port. */
  public List<PortRange> ports() {
    return ports == null ? List.of() : ports;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof AllowEntry a && Objects.equals(cidr, a.cidr) && Objects.equals(fqdn, a.fqdn)
        && Objects.equals(ports(), a.ports());
  }

  @Override
  public int hashCode() {
    return Objects.hash(cidr, fqdn, ports());
  }

  @Override
  public String toString() {
    return (cidr != null ? cidr : fqdn) + (ports == null ? "" : " " + ports);
  }
}
