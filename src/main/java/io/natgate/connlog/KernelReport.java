package io.natgate.connlog;

/** What the kernel reports to the connection log: a connection starting or ending, or one refused. */
sealed interface KernelReport permits ConntrackEvent, DeniedPacket {
  /** The egress IP the connection leaves (or would have left) with: what names its gateway. */
  String egressIP();
}
