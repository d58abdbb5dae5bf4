package io.natgate.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import java.util.Objects;

/** A destination port, or a range of them, of one protocol. */
@JsonInclude(JsonInclude.Include.NON_NULL)
public class PortRange {
  @JsonPropertyDescription("TCP, UDP or SCTP.")
  public Protocol protocol;

  @JsonPropertyDescription("The destination port (1-65535), or the first of a range.")
  public Integer port;

  @JsonPropertyDescription("The last port of a range (>= port); absent: port alone.")
  public Integer endPort;

  public PortRange() {
  }

  public PortRange(Protocol protocol, Integer port, Integer endPort) {
    this.protocol = protocol;
    this.port = port;
    this.endPort = endPort;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof PortRange p && protocol == p.protocol && Objects.equals(port, p.port)
        && Objects.equals(endPort, p.endPort);
  }

  @Override
  public int hashCode() {
    return Objects.hash(protocol, port, endPort);
  }
}
