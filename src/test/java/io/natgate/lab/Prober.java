package io.natgate.lab;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * Connects from one pod to the external echo server at a fixed rate, in the background, recording what the server
 * saw. Probes overlap rather than queue behind a failing one, so the records keep their rate through an outage.
 */
public final class Prober {
  /**
   * One connection attempt. A slow success is a packet the node held (waiting for ARP after its link came back)
   * and sent later: for outage timing, count it as lost.
   *
   * @param at when it started
   * @param took until the answer, or until it was given up
   * @param source the address the external host reported; empty when no answer came
   * @param sent when its shell began to connect (the SYN left a moment later), read from the probe itself: later
   *     than {@code at} by the time a process takes to start; its end when the shell never ran
   */
  public record Probe(Instant at, Duration took, Optional<String> source, Instant sent) {
    public Probe(Instant at, Duration took, Optional<String> source) {
      this(at, took, source, at);
    }

    /** When it was answered or given up. */
    public Instant ended() {
      return at.plus(took);
    }
  }

  /**
   * The failed probes of a round, split by the moments the path changed (an egress IP added to or removed from a
   * node): those in flight at one of them, and the rest.
   *
   * @param inFlight began to connect while the path was whole, before a switch, and failed after it: a connection
   *                 that the switch broke
   * @param other    every other failed probe: a new connection that failed
   */
  public record Failures(List<Probe> inFlight, List<Probe> other) {
  }

  /** A time an egress IP had no holder ({@code to} exclusive; {@link Instant#MAX} when it never got one again). */
  public record Unheld(Instant from, Instant to) {
    boolean contains(Instant t) {
      return !t.isBefore(from) && t.isBefore(to);
    }
  }

  /**
   * Splits the failed probes (pure). A probe is in flight at a switch when it began to connect strictly before it,
   * not while an IP had no holder, and ended (answered or given up) after it. Every other failed probe counts as a
   * new connection that failed: one begun at or after the switch, or in a gap between the old holder's release and
   * the new one's address (break before make), even though it ended after the new holder's switch. So the split can
   * only excuse a probe that really straddled a switch. {@code switches} must be no later than the real moments (a
   * late one would excuse probes begun after the real switch). A probe is taken as given up {@code timeout} after it
   * began at the latest (its process may be reaped later on a starved machine): one begun longer than that before
   * the switch had failed already.
   */
  public static Failures failures(List<Probe> probes, List<Instant> switches, List<Unheld> unheld,
      Duration timeout) {
    List<Probe> inFlight = new ArrayList<>();
    List<Probe> other = new ArrayList<>();
    for (Probe p : probes) {
      if (p.source().isEmpty()) {
        boolean straddles = unheld.stream().noneMatch(u -> u.contains(p.sent()))
            && switches.stream().anyMatch(s -> p.sent().isBefore(s) && p.ended().isAfter(s)
                && p.sent().plus(timeout).isAfter(s));
        (straddles ? inFlight : other).add(p);
      }
    }
    return new Failures(inFlight, other);
  }

  /**
   * How long after {@code cut} the echo came back with {@code source}, once probes had started failing: the outage
   * a user sees. Empty when no probe failed (no outage) or none succeeded again.
   */
  public static Optional<Duration> recovery(List<Probe> probes, Instant cut, String source) {
    return failedSince(probes, cut).stream().findFirst()
        .flatMap(failed -> firstAnswer(probes, failed.at().plusNanos(1), source))
        .map(answered -> Duration.between(cut, answered));
  }

  /** The probes started at or after {@code cut} that got no answer, in the order of {@code probes}. */
  public static List<Probe> failedSince(List<Probe> probes, Instant cut) {
    return probes.stream().filter(p -> !p.at().isBefore(cut) && p.source().isEmpty()).toList();
  }

  /**
   * The longest time from a probe that got no answer to the first answer with one of {@code sources} after it: the
   * longest a new connection could not be made (0 when every probe was answered; up to the last probe when none
   * answered after it).
   */
  public static long longestOutage(List<Probe> probes, Set<String> sources) {
    long longest = 0;
    java.time.Instant end = probes.isEmpty() ? null : probes.get(probes.size() - 1).at();
    for (Probe p : probes) {
      if (p.source().isEmpty()) {
        // never answered again while probing: at least until the last probe (a bound the table can print)
        long gap = sources.stream().flatMap(s -> firstAnswer(probes, p.at().plusNanos(1), s).stream())
            .min(java.util.Comparator.naturalOrder())
            .map(answered -> Duration.between(p.at(), answered).toMillis())
            .orElse(Duration.between(p.at(), end).toMillis());
        longest = Math.max(longest, gap);
      }
    }
    return longest;
  }

  /**
   * When the first answer with {@code source} came back among the probes started from {@code from}: the earliest
   * to finish, not the earliest started (probes run in parallel, and an early one may be answered late).
   */
  public static Optional<Instant> firstAnswer(List<Probe> probes, Instant from, String source) {
    return probes.stream().filter(p -> !p.at().isBefore(from) && p.source().equals(Optional.of(source)))
        .map(p -> p.at().plus(p.took())).min(Comparator.naturalOrder());
  }

  /** Probes that the echo server saw with a source other than {@code source}. */
  public static long seenWithOtherSource(List<Probe> probes, String source) {
    return probes.stream().filter(p -> p.source().isPresent() && !p.source().get().equals(source)).count();
  }

  private final ScheduledExecutorService clock = Executors.newSingleThreadScheduledExecutor(r -> {
    Thread t = new Thread(r, "lab-prober");
    t.setDaemon(true);
    return t;
  });
  private final List<CompletableFuture<Probe>> probes = new ArrayList<>();

  Prober(Supplier<CompletableFuture<Probe>> probe, Duration every) {
    clock.scheduleAtFixedRate(() -> {
      synchronized (probes) {
        probes.add(probe.get());
      }
    }, 0, every.toNanos(), TimeUnit.NANOSECONDS);
  }

  /** Probes started from {@code from} that have been answered so far (while probing goes on). */
  public long answeredSince(Instant from) {
    synchronized (probes) {
      return probes.stream().filter(f -> f.isDone() && !f.isCompletedExceptionally()).map(CompletableFuture::join)
          .filter(p -> !p.at().isBefore(from) && p.source().isPresent()).count();
    }
  }

  /** Stops probing, waits for the probes in flight, and returns every record, oldest first. */
  public List<Probe> stop() {
    clock.shutdownNow();
    try {
      clock.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    List<CompletableFuture<Probe>> started;
    synchronized (probes) {
      started = List.copyOf(probes);
    }
    return started.stream().map(CompletableFuture::join).sorted(Comparator.comparing(Probe::at)).toList();
  }
}
