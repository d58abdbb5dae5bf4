package io.natgate.api.v1alpha1;

/** Transport protocol of an allowed destination port. */
public enum Protocol {
  TCP,
  UDP,
  SCTP
}
