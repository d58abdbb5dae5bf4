package io.natgate.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import java.util.Objects;

/** A destination for which an egress IP is short of SNAT source ports, as the gateway node's agent measured it. */
@JsonInclude(JsonInclude.Include.NON_NULL)
public class SnatPortUse {
  @JsonPropertyDescription("The egress IP whose source ports are in use.")
  public String egressIP;

  @JsonPropertyDescription("The destination: protocol (tcp, udp, ...), address and port (none for ICMP).")
  public String destination;

  @JsonPropertyDescription("Share of the SNAT source ports in use towards it, in percent (rounded down to 5).")
  public Integer percent;

  public SnatPortUse() {
  }

  public SnatPortUse(String egressIP, String destination, int percent) {
    this.egressIP = egressIP;
    this.destination = destination;
    this.percent = percent;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof SnatPortUse u && Objects.equals(egressIP, u.egressIP)
        && Objects.equals(destination, u.destination) && Objects.equals(percent, u.percent);
  }

  @Override
  public int hashCode() {
    return Objects.hash(egressIP, destination, percent);
  }

  @Override
  public String toString() {
    return egressIP + " to " + destination + " (" + percent + " %)";
  }
}
