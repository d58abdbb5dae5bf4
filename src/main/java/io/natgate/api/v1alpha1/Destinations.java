package io.natgate.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.generator.annotation.Size;
import io.fabric8.generator.annotation.ValidationRule;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

@JsonInclude(JsonInclude.Include.NON_NULL)
public class Destinations {
  static final String IPV4_CIDR = "isCIDR(c) && cidr(c).ip().family() == 4";
  /** {@link #IPV4_CIDR} of a string field's own value. */
  static final String IPV4_CIDR_SELF = "isCIDR(self) && cidr(self).ip().family() == 4";
  static final String CIDR_RULE = "self.all(c, " + IPV4_CIDR + ")";
  static final String CANONICAL_RULE = "self.all(c, !(" + IPV4_CIDR + ") || cidr(c) == cidr(c).masked())";
  static final String UNIQUE_RULE = "self.all(c, self.exists_one(d, d == c))";

  @Size(min = 1, max = 64)
  @JsonPropertyDescription("IPv4 CIDRs whose traffic goes through the gateway. Default [0.0.0.0/0].")
  @ValidationRule(value = CIDR_RULE, message = "cidrs must be IPv4 CIDRs like 203.0.113.0/24")
  @ValidationRule(value = CANONICAL_RULE,
      message = "cidrs must have no host bits set (10.1.0.0/16, not 10.1.2.3/16)")
  @ValidationRule(value = UNIQUE_RULE, message = "cidrs must not repeat an entry")
  public List<@Size(max = 18) String> cidrs = new ArrayList<>(List.of("0.0.0.0/0"));

  @Size(max = 64)
  @JsonPropertyDescription("IPv4 CIDRs never sent through the gateway, even inside cidrs. The cluster's own CIDRs "
      + "(every node's pod CIDRs and the operator's configured cluster CIDRs) are always excluded.")
  @ValidationRule(value = CIDR_RULE,
      message = "excludedCidrs must be IPv4 CIDRs like 192.0.2.0/24")
  @ValidationRule(value = CANONICAL_RULE,
      message = "excludedCidrs must have no host bits set (10.1.0.0/16, not 10.1.2.3/16)")
  @ValidationRule(value = UNIQUE_RULE, message = "excludedCidrs must not repeat an entry")
  public List<@Size(max = 18) String> excludedCidrs = new ArrayList<>();

  @JsonPropertyDescription("When present, the only destinations selected pods may reach through the gateway: "
      + "connections to others are refused (TCP reset or ICMP administratively prohibited) and logged.")
  @Size(min = 1, max = 128)
  public List<AllowEntry> allow;

  public List<String> cidrs() {
    return cidrs == null || cidrs.isEmpty() ? List.of("0.0.0.0/0") : cidrs;
  }

  public List<String> excludedCidrs() {
    return excludedCidrs == null ? List.of() : excludedCidrs;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Destinations d && Objects.equals(cidrs, d.cidrs) && Objects.equals(excludedCidrs, d.excludedCidrs)
        && Objects.equals(allow, d.allow);
  }

  @Override
  public int hashCode() {
    return Objects.hash(cidrs, excludedCidrs, allow);
  }
}
