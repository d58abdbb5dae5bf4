package io.natgate.dns;

import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.peers.PeerView;
import io.natgate.peers.SequenceClock;
import java.util.HashMap;
import java.util.Map;
import java.util.function.Function;

/**
 * Decides whether pairs from another node go into this node's kernel: not when their sequence number is not above
 * the last one accepted from that sender or is far from this node's clock (a replay), nor when this node does not
 * SNAT (or stand by for) every pod of the message for that gateway, or the name is not in its allow list (a
 * stranger to that gateway). A wrong MAC never gets here (the codec refuses it). Thread-safe.
 */
public final class PairGuard {
  private final Map<String, Long> lastSeq = new HashMap<>();

  /**
   * @param states     this node's part in each gateway, by name
   * @param wallMillis this node's clock
   */
  public synchronized PeerView.Verdict check(PairMessage.Pairs m, Function<String, NodeGatewayState> states,
      long wallMillis) {
    Long last = lastSeq.get(m.sender());
    if (last != null && m.seq() <= last
        || Math.abs(m.seq() / SequenceClock.PER_MILLI - wallMillis) > PeerView.MAX_SKEW.toMillis()) {
      return PeerView.Verdict.REPLAY;
    }
    if (!DnsRoutes.accepts(states.apply(m.gateway()), m.fqdn(), m.pairs().stream().map(PairMessage.Pair::pod)
        .toList())) {
      return PeerView.Verdict.STRANGER;
    }
    lastSeq.put(m.sender(), m.seq());
    return PeerView.Verdict.ACCEPTED;
  }
}
