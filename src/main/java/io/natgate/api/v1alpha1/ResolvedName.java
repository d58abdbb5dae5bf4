package io.natgate.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import java.util.Objects;

/** What one DNS name of an allow list resolves to now, as the gateway's kernel holds it. */
@JsonInclude(JsonInclude.Include.NON_NULL)
public class ResolvedName {
  @JsonPropertyDescription("The allow list's fqdn.")
  public String fqdn;

  @JsonPropertyDescription("The (pod, address) pairs allowed now for this name: each an address a selected pod was "
      + "answered for it, until its TTL ends. 0: none yet (no pod asked, or the answers expired).")
  public int entries;

  @JsonPropertyDescription("When that number last changed (RFC 3339); absent when no gateway node has counted yet.")
  public String learned;

  public ResolvedName() {
  }

  public ResolvedName(String fqdn, int entries, String learned) {
    this.fqdn = fqdn;
    this.entries = entries;
    this.learned = learned;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof ResolvedName r && Objects.equals(fqdn, r.fqdn) && entries == r.entries
        && Objects.equals(learned, r.learned);
  }

  @Override
  public int hashCode() {
    return Objects.hash(fqdn, entries, learned);
  }

  @Override
  public String toString() {
    return fqdn + "=" + entries + "@" + learned;
  }
}
