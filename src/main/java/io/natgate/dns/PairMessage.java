package io.natgate.dns;

import java.util.List;

/**
 * What travels between agents on the DNS path: pairs to allow, or the acknowledgement that they are in the kernel.
 *
 * @param sender the sending node's name
 * @param seq    {@link io.natgate.peers.SequenceClock}: grows with every message of the sender, across restarts
 */
public sealed interface PairMessage {
  String sender();

  long seq();

  /**
   * (pod, address) pairs for one DNS name of one gateway's allow list, each to keep for its timeout.
   *
   * @param relayed sent on by the gateway node to its standbys: not to be relayed again, nor acknowledged
   */
  record Pairs(String sender, long seq, boolean relayed, String gateway, String fqdn, List<Pair> pairs)
      implements PairMessage {
  }

  /** The receiver has the pairs of message {@code acked} in its kernel. */
  record Ack(String sender, long seq, long acked) implements PairMessage {
  }

  /** One pod may reach one address for {@code timeoutSeconds}. */
  record Pair(String pod, String address, long timeoutSeconds) {
  }
}
