package io.natgate.agent;

import java.time.Duration;

/** Exponential backoff: {@code first}, doubling up to {@code max}, back to {@code first} after {@link #reset()}. */
final class Backoff {
  private final Duration first;
  private final Duration max;
  private Duration next;

  Backoff(Duration first, Duration max) {
    this.first = first;
    this.max = max;
    this.next = first;
  }

  synchronized Duration next() {
    Duration now = next;
    next = next.multipliedBy(2).compareTo(max) > 0 ? max : next.multipliedBy(2);
    return now;
  }

  synchronized void reset() {
    next = first;
  }
}
