package io.natgate.dataplane;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.jboss.logging.Logger;

/**
 * Whether another node has an egress IP that this node still has: ARP requests for it from this node's uplink, with
 * source 0.0.0.0 (the probe of duplicate address detection). A node answers a request only for an address it has,
 * and this node's kernel never sees its own request, so only another node's answer counts. With source 0.0.0.0 the
 * nodes that receive the request learn nothing from it: their neighbour entries for the IP stay as the new holder's
 * gratuitous ARP left them (a request from the IP itself would point them back at this node).
 */
public final class AddressProbe {
  private static final Logger LOG = Logger.getLogger(AddressProbe.class);
  /** Between two requests for one IP: a small part of a handover. */
  static final Duration PROBE_EVERY = Duration.ofMillis(20);
  /** Beyond the probe's own deadline before the process is killed (a starved process starts late). */
  private static final Duration SLACK = Duration.ofSeconds(1);

  private AddressProbe() {
  }

  /**
   * The command (Habets arping, the agent image's {@code arping}): a request every {@link #PROBE_EVERY} until the
   * first answer ({@code -C 1}, exit 0) or {@code within} (exit 1, as for any error).
   */
  static List<String> command(String uplink, String ip, Duration within) {
    return List.of("arping", "-q", "-0", "-i", uplink, "-C", "1", "-W", seconds(PROBE_EVERY), "-w", seconds(within),
        ip);
  }

  private static String seconds(Duration d) {
    return String.format(Locale.ROOT, "%.3f", d.toMillis() / 1000.0);
  }

  /**
   * Probes each IP at once and returns those no other node answered for within {@code within} (a probe that could
   * not run counts as unanswered, and is logged).
   */
  public static Set<String> unanswered(Kernel kernel, String uplink, Collection<String> ips, Duration within) {
    if (ips.isEmpty()) {
      return Set.of();
    }
    ExecutorService probes = Executors.newFixedThreadPool(ips.size(), r -> {
      Thread t = new Thread(r, "natgate-address-probe");
      t.setDaemon(true);
      return t;
    });
    try {
      Map<String, CompletableFuture<Boolean>> answered = new TreeMap<>();
      for (String ip : ips) {
        answered.put(ip, CompletableFuture.supplyAsync(() -> answered(kernel, uplink, ip, within), probes));
      }
      Set<String> unanswered = new TreeSet<>();
      answered.forEach((ip, a) -> {
        if (!a.join()) {
          unanswered.add(ip);
        }
      });
      return unanswered;
    } finally {
      probes.shutdownNow();
    }
  }

  private static boolean answered(Kernel kernel, String uplink, String ip, Duration within) {
    try {
      kernel.runWithin(within.plus(SLACK), null, command(uplink, ip, within).toArray(String[]::new));
      return true;
    } catch (Kernel.KernelException e) {
      if (!e.getMessage().endsWith("(exit 1): ")) { // with -q, no answer prints nothing: anything else is an error
        LOG.warnf("probing for another node's %s: %s", ip, e.getMessage());
      }
      return false;
    }
  }
}
