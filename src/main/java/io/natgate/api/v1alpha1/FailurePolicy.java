package io.natgate.api.v1alpha1;

/** What the data path does with selected traffic that no gateway can carry. */
public enum FailurePolicy {
  /** Never let it leave with another source IP. */
  Drop,
  /** Let it fall back to the node's own masquerade. */
  Allow
}
