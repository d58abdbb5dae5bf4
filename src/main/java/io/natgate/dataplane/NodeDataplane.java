package io.natgate.dataplane;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * One node's data plane: applies plans with the fewest commands, trusting what it applied last until a repair looks
 * at the kernel again. Thread-safe; every method is one consistent step.
 */
public final class NodeDataplane {
  private final Kernel kernel;
  private final DataplaneSettings settings;
  private Observed trusted; // what the last successful apply left; null: look at the kernel first
  private KernelPlan wanted = KernelPlan.EMPTY;
  private boolean fenced;
  /** arping runs by egress IP; stopped the moment the IP is released, so a fenced node stops claiming it. */
  private final Map<String, Process> announcers = new HashMap<>();

  public NodeDataplane(Kernel kernel, DataplaneSettings settings) {
    this.kernel = kernel;
    this.settings = settings;
  }

  /** Result of one apply: whether it changed anything (false: the kernel already matched), and the IPs announced. */
  public record Result(boolean changed, List<String> announced) {
  }

  public synchronized Result apply(KernelPlan plan) {
    wanted = plan;
    return converge();
  }

  /** Looks at the kernel and puts back whatever someone else removed or changed. */
  public synchronized Result repair() {
    trusted = null;
    return converge();
  }

  /** Releases every egress IP held here (self-fencing); rules stay. Kept until {@link #unfence()}. */
  public synchronized void fence() {
    fenced = true;
    converge();
  }

  public synchronized Result unfence() {
    fenced = false;
    return converge();
  }

  /**
   * Extends the lifetime of the egress IPs held here (after each heartbeat). {@code change}, not {@code replace}: an
   * address that already expired stays gone until an apply decides again.
   */
  public synchronized void refreshHeld() {
    if (settings.addressLifetimeSeconds() == 0 || fenced || wanted.held().isEmpty()) {
      return;
    }
    var script = new StringBuilder();
    wanted.held().forEach(ip -> script.append("address change ").append(ip).append("/32")
        .append(settings.addressOptions()).append('\n'));
    kernel.run(script.toString(), "ip", "-force", "-batch", "-");
  }

  public synchronized boolean fenced() {
    return fenced;
  }

  /** Stops announcing (the kernel state stays). */
  public synchronized void close() {
    announcers.values().forEach(Process::destroy);
    announcers.clear();
  }

  public DataplaneSettings settings() {
    return settings;
  }

  public synchronized KernelPlan wanted() {
    return wanted;
  }

  private Result converge() {
    KernelPlan target = fenced ? withoutHeld(wanted) : wanted;
    try {
      Observed now = trusted != null ? trusted : kernel.observe(settings);
      Changes changes = Changes.between(now, target, settings);
      announcers.entrySet().removeIf(a -> {
        boolean stop = !a.getValue().isAlive() || !target.held().contains(a.getKey());
        if (stop) {
          a.getValue().destroy();
        }
        return stop;
      });
      if (!changes.isEmpty()) {
        kernel.apply(changes);
        for (String ip : changes.announce()) {
          // Gratuitous ARP so that neighbours (the next hop, other nodes) move the IP's entry here at once; repeated
          // for 3 s, because a neighbour may still resolve the IP to a previous holder whose agent died (until the
          // kernel expires that address) and must be corrected again.
          Process previous = announcers.put(ip, kernel.start("arping", "-U", "-S", ip, "-i", settings.uplink(),
              "-c", "7", "-W", "0.5", ip));
          if (previous != null) {
            previous.destroy();
          }
        }
      }
      trusted = Observed.after(target, now.uplinkMtu());
      return new Result(!changes.isEmpty(), changes.announce());
    } catch (RuntimeException e) {
      trusted = null;
      throw e;
    }
  }

  private static KernelPlan withoutHeld(KernelPlan plan) {
    return new KernelPlan(plan.sets(), plan.rules(), new TreeSet<>(), plan.routes(), plan.markRules(), plan.tunnel());
  }
}
