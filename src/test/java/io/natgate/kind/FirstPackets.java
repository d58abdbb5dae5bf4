package io.natgate.kind;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The first packet of every TCP connection to one port, as each node's conntrack saw it leave: conntrack sends its
 * NEW event when the connection is confirmed, after the nat table chose the connection's source for good (a
 * connection's NAT is decided on its first packet; its retransmissions keep it). So a selected pod's connection that
 * its node or gateway node sent out with the node's own address shows here with that address, whether or not the
 * external host answered it. Alongside, on each node, a record of natgate's set members and of the first rule of the
 * built-in chains it jumps from, every 0.5 s when they changed: what the kernel held around such a packet.
 */
final class FirstPackets {
  private static final String DIR = "/tmp/natgate-first-packets";
  private static final Pattern NEW = Pattern.compile("^\\s*\\[(\\d+)\\.(\\d+)\\s*\\]\\s+\\[NEW\\] tcp .*? src=(\\S+) "
      + "dst=(\\S+) sport=(\\d+) dport=(\\d+) .*?src=(\\S+) dst=(\\S+) sport=(\\d+) dport=(\\d+)");

  /**
   * One connection's first packet on one node: the pod address and port it came from, the destination, and the
   * source the node gave it (the reply's destination).
   */
  record Flow(String node, Instant at, String from, int fromPort, String to, int toPort, String source,
      int sourcePort) {
    /** Sent on untranslated: a director steering it into the tunnel (its gateway node translates it). */
    boolean untranslated() {
      return from.equals(source) && fromPort == sourcePort;
    }
  }

  /** A line of {@code conntrack -E -o timestamp}; empty for anything but a TCP NEW event. */
  static Optional<Flow> parse(String node, String line) {
    Matcher m = NEW.matcher(line);
    if (!m.find()) {
      return Optional.empty();
    }
    Instant at = Instant.ofEpochSecond(Long.parseLong(m.group(1)), Long.parseLong(m.group(2)) * 1000);
    return Optional.of(new Flow(node, at, m.group(3), Integer.parseInt(m.group(5)), m.group(4),
        Integer.parseInt(m.group(6)), m.group(8), Integer.parseInt(m.group(10))));
  }

  private final KindCluster kind;
  private final List<String> nodes;
  private final int port;

  /** Starts the event listener and the kernel record in each node (both stop when {@link #stop()} runs). */
  FirstPackets(KindCluster kind, List<String> nodes, int port) throws Exception {
    this.kind = kind;
    this.nodes = List.copyOf(nodes);
    this.port = port;
    String record = """
        : > $D/kernel; : > $D/old
        while [ ! -e $D/stop ]; do
          { ipset save 2>/dev/null | grep '^add natgate-'
            for c in 'nat POSTROUTING' 'filter FORWARD' 'mangle PREROUTING'; do set -- $c
              echo "first of $2: $(iptables -t $1 -S $2 1 2>&1)"; done; } | sort > $D/new
          if ! cmp -s $D/old $D/new; then
            t=$(date +%s.%N); diff $D/old $D/new | grep '^[<>]' | sed "s/^/$t /" >> $D/kernel; mv $D/new $D/old
          fi
          sleep 0.5
        done""".replace("$D", DIR);
    for (String node : nodes) {
      kind.exec(node, "sh", "-c", "rm -rf " + DIR + " && mkdir -p " + DIR);
      KindCluster.run(Duration.ofMinutes(1), "docker", "exec", "-d", node, "sh", "-c", "echo $$ > " + DIR
          + "/conntrack.pid; exec stdbuf -oL conntrack -E -e NEW -p tcp --dport " + port + " -o timestamp -b 8388608"
          + " > " + DIR + "/events 2>&1");
      KindCluster.run(Duration.ofMinutes(1), "docker", "exec", "-d", node, "bash", "-c", record);
    }
  }

  /** Stops both in every node; the first packets they saw. */
  List<Flow> stop() throws Exception {
    List<Flow> flows = new ArrayList<>();
    for (String node : nodes) {
      kind.exec(node, "sh", "-c", "touch " + DIR + "/stop; kill $(cat " + DIR + "/conntrack.pid) 2>/dev/null; sleep 0.5");
      String events = kind.exec(node, "cat", DIR + "/events");
      events.lines().map(l -> parse(node, l)).flatMap(Optional::stream).filter(f -> f.toPort() == port)
          .forEach(flows::add);
      if (flows.stream().noneMatch(f -> f.node().equals(node)) && !events.isBlank()) {
        System.out.printf("kind: %s conntrack said: %s%n", node, events.lines().limit(5).toList());
      }
    }
    return flows;
  }

  /** The kernel record of a node from {@code from} to {@code to} (epoch seconds with a fraction, as date prints). */
  String kernel(String node, Instant from, Instant to) throws Exception {
    StringBuilder out = new StringBuilder();
    for (String line : kind.exec(node, "cat", DIR + "/kernel").lines().toList()) {
      String[] time = line.split(" ", 2)[0].split("\\.");
      try {
        Instant at = Instant.ofEpochSecond(Long.parseLong(time[0]), Long.parseLong((time[1] + "000000000")
            .substring(0, 9)));
        if (!at.isBefore(from) && !at.isAfter(to)) {
          out.append(at).append(' ').append(line.split(" ", 2)[1]).append('\n');
        }
      } catch (RuntimeException e) {
        out.append(line).append('\n');
      }
    }
    return out.toString();
  }
}
