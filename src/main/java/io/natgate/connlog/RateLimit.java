package io.natgate.connlog;

/** A token bucket: up to {@code perSecond} takes a second on average, {@code burst} at once. Thread-safe. */
final class RateLimit {
  private final double perNano;
  private final double burst;
  private double tokens;
  private long last;

  RateLimit(int perSecond, int burst) {
    this.perNano = perSecond / 1e9;
    this.burst = burst;
    this.tokens = burst;
    this.last = Long.MIN_VALUE;
  }

  /** Whether one more may go now ({@code now}: System.nanoTime()). */
  synchronized boolean take(long now) {
    if (last != Long.MIN_VALUE) {
      tokens = Math.min(burst, tokens + (now - last) * perNano);
    }
    last = now;
    if (tokens < 1) {
      return false;
    }
    tokens--;
    return true;
  }
}
