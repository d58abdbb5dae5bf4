package io.natgate.dns;

import com.fasterxml.jackson.databind.JsonNode;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;

/** Prints the time of DNS queries through the node's proxy beside the same queries straight to the resolver. */
public final class DnsLatency {
  private DnsLatency() {
  }

  /** @param proxied, direct reports of lab/dns_client.py ({@code ms}: one time per query) */
  public static void print(JsonNode proxied, JsonNode direct) {
    print(times(proxied), times(direct));
  }

  /** @param p, d times of each query (ms) through the proxy and direct */
  public static void print(List<Double> p, List<Double> d) {
    p = sorted(p);
    d = sorted(d);
    System.out.printf("DNS latency (ms), %d queries each, load average %.2f%n", p.size(),
        ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage());
    System.out.printf("  %-28s p50 %6.2f  p95 %6.2f  p99 %6.2f  max %7.2f%n", "through the proxy", at(p, 50),
        at(p, 95), at(p, 99), at(p, 100));
    System.out.printf("  %-28s p50 %6.2f  p95 %6.2f  p99 %6.2f  max %7.2f%n", "direct to the lab server", at(d, 50),
        at(d, 95), at(d, 99), at(d, 100));
    System.out.printf("  added by the path: p50 %+.2f ms, p99 %+.2f ms (p50 ratio %.1f)%n", at(p, 50) - at(d, 50),
        at(p, 99) - at(d, 99), at(p, 50) / at(d, 50));
  }

  /** The query times of a report of lab/dns_client.py. */
  public static List<Double> times(JsonNode report) {
    List<Double> t = new ArrayList<>();
    report.path("ms").forEach(ms -> t.add(ms.asDouble()));
    return t;
  }

  private static List<Double> sorted(List<Double> times) {
    List<Double> t = new ArrayList<>(times);
    t.sort(Double::compare);
    return t;
  }

  static double at(List<Double> sorted, int percentile) {
    if (sorted.isEmpty()) {
      return Double.NaN;
    }
    int i = (int) Math.ceil(percentile / 100.0 * sorted.size()) - 1;
    return sorted.get(Math.max(0, Math.min(sorted.size() - 1, i)));
  }
}
