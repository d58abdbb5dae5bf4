package io.natgate.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.generator.annotation.Max;
import io.fabric8.generator.annotation.Min;
import io.fabric8.generator.annotation.Required;
import io.fabric8.generator.annotation.ValidationRule;
import java.util.Objects;

/** A destination port, or a range of them, of one protocol. */
@ValidationRule(value = "!has(self.endPort) || self.endPort >= self.port", message = "endPort must be >= port")
@JsonInclude(JsonInclude.Include.NON_NULL)
public class PortRange {
  @Required
  @JsonPropertyDescription("TCP, UDP or SCTP.")
  public Protocol protocol;

  @Required
  @Min(1)
  @Max(65535)
  @JsonPropertyDescription("The destination port (1-65535), or the first of a range.")
  public Integer port;

  @Min(1)
  @Max(65535)
  @JsonPropertyDescription("The last port of a range (>= port); absent: port alone.")
  public Integer endPort;

  public PortRange() {
  }

  public PortRange(Protocol protocol, Integer port, Integer endPort) {
    this.protocol = protocol;
    this.port = port;
    this.endPort = endPort;
  }

  public static PortRange tcp(int port) {
    return new PortRange(Protocol.TCP, port, null);
  }

  /** The last port: endPort, or port alone. */
  public int last() {
    return endPort == null ? port : endPort;
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

  @Override
  public String toString() {
    return protocol + "/" + port + (endPort == null ? "" : "-" + endPort);
  }
}
