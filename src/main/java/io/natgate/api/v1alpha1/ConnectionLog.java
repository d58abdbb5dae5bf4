package io.natgate.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.generator.annotation.Default;
import java.util.Objects;

/** Whether the gateway nodes record every connection they translate (docs/connection-log.md). */
@JsonInclude(JsonInclude.Include.NON_NULL)
public class ConnectionLog {
  @JsonPropertyDescription("Record a start and an end line (JSON, schema natgate.io/connection-log/v1) for every "
      + "connection the gateway translates: pod, egress IP, destination, bytes and packets each way. Where the "
      + "lines go (agent stdout or a rotated file) is a setting of the agent. Default true.")
  @Default("true")
  public Boolean enabled = true;

  public boolean enabled() {
    return enabled == null || enabled;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof ConnectionLog c && enabled() == c.enabled();
  }

  @Override
  public int hashCode() {
    return Objects.hash(enabled());
  }
}
