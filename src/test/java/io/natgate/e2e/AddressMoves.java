package io.natgate.e2e;

import io.natgate.lab.LabNode;
import io.natgate.lab.NetworkLab;
import io.natgate.lab.Prober;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * When each node's kernel gained or lost one of the egress IPs during a round, as {@code ip -ts monitor address}
 * in each node's namespace saw it: the switches of a move (the new holder's address comes before its gratuitous
 * ARP, which moves the traffic; the old holder's goes when it releases). The address's lifetime renewals are not
 * switches.
 */
final class AddressMoves implements AutoCloseable {
  record Move(Instant at, String node, String ip, boolean added) {
  }

  private record Event(Instant at, String node, String ip, boolean added) {
  }

  private static final Pattern LINE = Pattern.compile("^\\[([0-9T:.-]+)\\] (Deleted )?.*\\binet (\\S+)/32\\b.*");

  private final List<Process> monitors = new ArrayList<>();
  private final List<Event> events = new CopyOnWriteArrayList<>();
  private final Set<String> ips;
  private final Map<String, Set<String>> before;
  private final Instant sampled;

  AddressMoves(NetworkLab lab, Collection<String> ips) throws InterruptedException {
    this.ips = Set.copyOf(ips);
    for (LabNode n : lab.nodes()) {
      try {
        Process p = new ProcessBuilder("ip", "-n", n.ns(), "-ts", "-o", "monitor", "address", "dev", n.uplink())
            .redirectError(ProcessBuilder.Redirect.DISCARD).start();
        monitors.add(p);
        Thread reader = new Thread(() -> read(n.name(), p), "address-moves-" + n.name());
        reader.setDaemon(true);
        reader.start();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    Thread.sleep(100); // the monitors subscribe
    sampled = Instant.now();
    before = lab.holders(ips);
  }

  private void read(String node, Process p) {
    try (var in = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
      for (String line; (line = in.readLine()) != null; ) {
        Matcher m = LINE.matcher(line);
        if (m.matches() && ips.contains(m.group(3))) {
          events.add(new Event(LocalDateTime.parse(m.group(1)).atZone(ZoneId.systemDefault()).toInstant(), node,
              m.group(3), m.group(2) == null));
        }
      }
    } catch (IOException e) {
      // ended by close()
    }
  }

  /** The changes of holding, in time order, from what the nodes held when this began. */
  List<Move> moves() {
    Set<String> holding = new HashSet<>();
    before.forEach((ip, nodes) -> nodes.forEach(node -> holding.add(node + " " + ip)));
    List<Move> moves = new ArrayList<>();
    events.stream().filter(e -> !e.at().isBefore(sampled)).sorted(Comparator.comparing(Event::at)).forEach(e -> {
      boolean changed = e.added() ? holding.add(e.node() + " " + e.ip()) : holding.remove(e.node() + " " + e.ip());
      if (changed) {
        moves.add(new Move(e.at(), e.node(), e.ip(), e.added()));
      }
    });
    return moves;
  }

  List<Instant> switches() {
    return moves().stream().map(Move::at).toList();
  }

  /** The times an IP held when this began had no holder (break before make); to {@link Instant#MAX} if it stays so. */
  List<Prober.Unheld> unheld() {
    Map<String, Set<String>> holders = new java.util.HashMap<>();
    before.forEach((ip, nodes) -> holders.put(ip, new HashSet<>(nodes)));
    Map<String, Instant> since = new java.util.HashMap<>();
    List<Prober.Unheld> gaps = new ArrayList<>();
    for (Move m : moves()) {
      Set<String> nodes = holders.get(m.ip());
      boolean wasHeld = !nodes.isEmpty();
      if (m.added()) {
        nodes.add(m.node());
      } else {
        nodes.remove(m.node());
      }
      if (wasHeld && nodes.isEmpty()) {
        since.put(m.ip(), m.at());
      } else if (!wasHeld && since.containsKey(m.ip())) {
        gaps.add(new Prober.Unheld(since.remove(m.ip()), m.at()));
      }
    }
    since.values().forEach(from -> gaps.add(new Prober.Unheld(from, Instant.MAX)));
    return gaps;
  }

  /** The moves, each with its offset from {@code from} in ms. */
  String describe(Instant from) {
    return moves().stream().map(m -> String.format("  %+6d ms %s %s %s", Duration.between(from, m.at()).toMillis(),
        m.node(), m.added() ? "added" : "removed", m.ip())).collect(Collectors.joining("\n"));
  }

  @Override
  public void close() {
    monitors.forEach(p -> {
      p.destroy();
      try {
        p.waitFor();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    });
  }
}
