package io.natgate.peers;

import java.util.Map;
import java.util.Set;

/**
 * One peer heartbeat: who sends it, a sequence number that only grows (across restarts too), the egress IPs the
 * sender holds, and what it currently hears of the other members (gossip), so that a member cut off from one peer
 * still learns from the others whether that peer is alive and what it holds.
 *
 * @param seq       {@link SequenceClock}: the sender's wall clock in ms times 1000 plus a counter
 * @param holds     egress IPs the sender holds (or is about to add)
 * @param hears     by member name, for each member the sender heard within the peer timeout
 * @param handsOver egress IPs a stopping sender's kernel still has and hands over (its farewell): the node that takes
 *                  one forwards to it the replies of the connections it translated (empty in a heartbeat)
 */
public record PeerMessage(String sender, long seq, Set<String> holds, Map<String, Heard> hears,
    Set<String> handsOver) {
  /** A heartbeat: nothing handed over. */
  public PeerMessage(String sender, long seq, Set<String> holds, Map<String, Heard> hears) {
    this(sender, seq, holds, hears, Set.of());
  }

  /**
   * @param seq      the sequence number of the last message the sender accepted from that member
   * @param agoMillis how long before sending it accepted it
   * @param holds    what that member held then
   */
  public record Heard(long seq, int agoMillis, Set<String> holds) {
  }

  /** The sender's wall-clock time in ms, from the sequence number. */
  public long sentMillis() {
    return seq / SequenceClock.PER_MILLI;
  }
}
