package io.natgate.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import java.util.Collection;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * Gateway role with the connection log on: what the agent needs to name the pods in its records. Present only
 * then; its presence is what turns the log on for this gateway on this node.
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
public class ConnectionLogState {
  @JsonPropertyDescription("The pods SNATed here, by pod IP: namespace/name.")
  // Left out when empty: server-side apply turns an applied {} over existing entries into null, which the schema refuses.
  @JsonInclude(JsonInclude.Include.NON_EMPTY)
  public Map<String, String> pods = new TreeMap<>();

  public ConnectionLogState() {
  }

  public ConnectionLogState(Map<String, String> pods) {
    this.pods = pods;
  }

  /**
   * {@code mine}, also naming {@code pods} as {@code was} did: a planned move keeps a pod in its old holder's SNAT for a
   * while, where the plan (which maps it elsewhere) does not name it. Without names to add, {@code mine} itself.
   */
  public static ConnectionLogState keeping(ConnectionLogState mine, Collection<String> pods, ConnectionLogState was) {
    if (was == null || was.pods == null) {
      return mine;
    }
    Map<String, String> named = new TreeMap<>(mine == null || mine.pods == null ? Map.of() : mine.pods);
    pods.stream().filter(was.pods::containsKey).forEach(ip -> named.putIfAbsent(ip, was.pods.get(ip)));
    return mine != null && named.equals(mine.pods) || mine == null && named.isEmpty() ? mine
        : new ConnectionLogState(named);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof ConnectionLogState c && Objects.equals(pods, c.pods);
  }

  @Override
  public int hashCode() {
    return Objects.hash(pods);
  }
}
