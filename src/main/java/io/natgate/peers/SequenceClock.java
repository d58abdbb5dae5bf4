package io.natgate.peers;

/**
 * Sequence numbers that grow across restarts without storing anything: wall-clock milliseconds times
 * {@value #PER_MILLI}, plus one for each further message in the same millisecond. A receiver also refuses numbers
 * far from its own clock, so a message recorded before the receiver restarted cannot be replayed to it later.
 */
public final class SequenceClock {
  public static final long PER_MILLI = 1000;
  private long last;

  public synchronized long next(long wallMillis) {
    last = Math.max(last + 1, wallMillis * PER_MILLI);
    return last;
  }
}
