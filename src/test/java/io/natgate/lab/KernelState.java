package io.natgate.lab;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * What a namespace's kernel holds that an agent could leave behind: iptables (both backends, nft and legacy), ipset
 * names, addresses, rules, routes and links, normalised so that two snapshots of the same configuration are equal (no counters, dates, interface
 * indexes or peer ids). Compare with {@link #equals}; {@link #diff} says what changed.
 */
public record KernelState(String ns, Map<String, List<String>> sections) {
  static final String MARK = "@@section ";

  /** The shell script whose output {@link #parse} reads. */
  static final String SCRIPT = """
      echo '@@section iptables'; iptables-nft-save
      echo '@@section iptables-legacy'; iptables-legacy-save
      echo '@@section ipsets'; ipset list -n
      echo '@@section addresses'; ip -o addr
      echo '@@section rules'; ip rule
      echo '@@section routes'; ip route show table all
      echo '@@section links'; ip -o link
      """;

  private static final Pattern COUNTERS = Pattern.compile(" ?\\[\\d+:\\d+\\]");
  private static final Pattern IFINDEX = Pattern.compile("^\\d+:\\s+");
  private static final Pattern PEER = Pattern.compile("@if\\d+|link-netnsid \\d+|link-netns \\S+");
  private static final Pattern SPACE = Pattern.compile("[\\s\\\\]+");
  private static final Pattern PRISTINE_CHAIN = Pattern.compile(":(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT");

  static KernelState parse(String ns, String output) {
    Map<String, List<String>> raw = new LinkedHashMap<>();
    List<String> current = null;
    for (String line : output.split("\n")) {
      if (line.startsWith(MARK)) {
        current = raw.computeIfAbsent(line.substring(MARK.length()), k -> new ArrayList<>());
      } else if (current != null && !line.isBlank()) {
        current.add(line);
      }
    }
    Map<String, List<String>> sections = new LinkedHashMap<>();
    raw.forEach((name, lines) -> sections.put(name, switch (name) {
      case "iptables", "iptables-legacy" -> iptables(lines);
      case "rules" -> List.copyOf(lines); // their order is their meaning
      default -> lines.stream().map(KernelState::normalise).sorted().toList();
    }));
    return new KernelState(ns, Collections.unmodifiableMap(sections));
  }

  /**
   * Without comments and counters, and without tables that hold nothing: iptables-nft keeps a table once anything
   * used it, so a table whose rules were all removed is the same as none.
   */
  private static List<String> iptables(List<String> lines) {
    List<String> result = new ArrayList<>();
    List<String> table = new ArrayList<>();
    for (String line : lines) {
      if (line.startsWith("#")) {
        continue;
      }
      table.add(COUNTERS.matcher(line).replaceAll(""));
      if (line.equals("COMMIT")) {
        boolean empty = table.subList(1, table.size() - 1).stream().allMatch(l -> PRISTINE_CHAIN.matcher(l).matches());
        if (!empty) {
          result.addAll(table);
        }
        table.clear();
      }
    }
    result.addAll(table);
    return List.copyOf(result);
  }

  private static String normalise(String line) {
    String s = IFINDEX.matcher(line).replaceFirst("");
    return SPACE.matcher(PEER.matcher(s).replaceAll("")).replaceAll(" ").trim();
  }

  /** What changed from {@code this} to {@code after}: removed (-) and added (+) lines, by section; empty when equal. */
  public String diff(KernelState after) {
    StringBuilder out = new StringBuilder();
    for (String name : List.of("iptables", "iptables-legacy", "ipsets", "addresses", "rules", "routes", "links")) {
      List<String> changes = lineDiff(sections.getOrDefault(name, List.of()),
          after.sections.getOrDefault(name, List.of()));
      if (!changes.isEmpty()) {
        out.append(ns).append(' ').append(name).append(":\n");
        changes.forEach(c -> out.append("  ").append(c).append('\n'));
      }
    }
    return out.toString();
  }

  /** A longest-common-subsequence diff: iptables-save repeats lines (COMMIT, chain policies) in every table. */
  private static List<String> lineDiff(List<String> a, List<String> b) {
    int[][] common = new int[a.size() + 1][b.size() + 1];
    for (int i = a.size() - 1; i >= 0; i--) {
      for (int j = b.size() - 1; j >= 0; j--) {
        common[i][j] = a.get(i).equals(b.get(j)) ? common[i + 1][j + 1] + 1
            : Math.max(common[i + 1][j], common[i][j + 1]);
      }
    }
    List<String> changes = new ArrayList<>();
    int i = 0;
    int j = 0;
    while (i < a.size() || j < b.size()) {
      if (i < a.size() && j < b.size() && a.get(i).equals(b.get(j))) {
        i++;
        j++;
      } else if (j < b.size() && (i == a.size() || common[i][j + 1] >= common[i + 1][j])) {
        changes.add("+ " + b.get(j++));
      } else {
        changes.add("- " + a.get(i++));
      }
    }
    return changes;
  }

  @Override
  public String toString() {
    StringBuilder out = new StringBuilder("kernel state of ").append(ns).append('\n');
    sections.forEach((name, lines) -> {
      out.append("[").append(name).append("]\n");
      lines.forEach(l -> out.append("  ").append(l).append('\n'));
    });
    return out.toString();
  }
}
