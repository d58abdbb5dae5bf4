package io.natgate.dataplane;

/** Sends one gratuitous ARP for an egress IP; a failure is logged, never thrown ({@code arping} follows). */
@FunctionalInterface
public interface ArpSender {
  /** For a data plane whose agent runs outside the node's network namespace: {@code arping} only. */
  ArpSender NONE = ip -> {
  };

  void send(String ip);
}
