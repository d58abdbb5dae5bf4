package io.natgate.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/** One destination that selected pods may reach through the gateway: a CIDR or a DNS name, on some ports. */
@JsonInclude(JsonInclude.Include.NON_NULL)
public class AllowEntry {
  @JsonPropertyDescription("An IPv4 CIDR without host bits, like 198.51.100.0/24. Exactly one of cidr and fqdn.")
  public String cidr;

  @JsonPropertyDescription("A lowercase DNS name without trailing dot, like api.payments.example, or *.payments.example "
      + "for any name below it (not the name itself). The addresses the selected pods themselves are answered for it "
      + "are allowed, for those pods, for the answer's TTL. Exactly one of cidr and fqdn.")
  public String fqdn;

  @JsonPropertyDescription("The ports allowed; absent: every port.")
  public List<PortRange> ports = new ArrayList<>();

  public AllowEntry() {
  }

  public AllowEntry(String cidr, String fqdn, List<PortRange> ports) {
    this.cidr = cidr;
    this.fqdn = fqdn;
    this.ports = ports;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof AllowEntry a && Objects.equals(cidr, a.cidr) && Objects.equals(fqdn, a.fqdn)
        && Objects.equals(ports, a.ports);
  }

  @Override
  public int hashCode() {
    return Objects.hash(cidr, fqdn, ports);
  }
}
