package io.natgate.dataplane;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import org.jboss.logging.Logger;

/**
 * One node's data plane: applies plans with the fewest commands, trusting what it applied last until a repair looks
 * at the kernel again. Thread-safe; every method is one consistent step.
 *
 * <p>Fencing has a path of its own: {@link #fence()} never waits for an apply (which holds this object's lock for as
 * long as its commands take). It takes only {@code refreshLock} (waiting for a refresh's command in flight) and
 * {@code holdLock}, which guards nothing but adding egress IPs: so once it returns, no IP is held here and none is
 * added until {@link #unfence()}, whatever an apply was doing meanwhile.
 */
public final class NodeDataplane {
  private static final Logger LOG = Logger.getLogger(NodeDataplane.class);
  /** Releasing is one short command; a kernel that cannot answer in this time has failed (reported as an error). */
  public static final Duration RELEASE_TIMEOUT = Duration.ofSeconds(1);

  private final Kernel kernel;
  private final DataplaneSettings settings;
  private final IptablesBackend iptables;
  private final ArpSender firstArp;
  private Observed trusted; // what the last successful apply left; null: look at the kernel first
  private volatile KernelPlan wanted = KernelPlan.EMPTY;
  /** Set when something outside an apply (the fence) changed the kernel: the next apply looks at it first. */
  private final AtomicBoolean kernelChanged = new AtomicBoolean();

  private final Object holdLock = new Object();
  /**
   * Held while a refresh's command runs, and taken (before {@code holdLock}) by whatever must not have a refresh put
   * an address back after it removed it: a fence, and an apply that stops refreshing an IP. Not by other applies: they
   * never wait for a refresh (under load its command takes up to 150 ms, and it runs every heartbeat).
   */
  private final Object refreshLock = new Object();
  /** Written under {@code holdLock}: while set, no egress IP is added. */
  private volatile boolean fenced;
  /** Egress IPs that an apply added (or was adding) here: what a fence removes. Guarded by {@code holdLock}. */
  private final Set<String> mayHold = new TreeSet<>();
  /**
   * Egress IPs whose lifetime {@link #refreshHeld()} extends: those the last apply added and still wants. Guarded by
   * {@code holdLock}, not by this object's lock: a refresh never waits for an apply (under load an apply takes
   * seconds, longer than the lifetime), and an apply takes an IP out of here before it releases it.
   */
  private final Set<String> refreshable = new TreeSet<>();
  /** The egress IPs whose SNAT the last successful apply left in place: those {@link #take} may add at once. */
  private volatile Set<String> translating = Set.of();
  /**
   * The take's two commands, started ahead while this node is a standby (some IP's SNAT in place, its address not
   * held), so that a takeover does not wait for two processes to start. Guarded by {@code holdLock}; null: none.
   */
  private Kernel.Prepared readyRecord;
  private Kernel.Prepared readyAddress;
  /** The fence's command, started ahead while this node holds or may hold an IP. Guarded by {@code holdLock}. */
  private Kernel.Prepared readyRelease;
  /** arping runs by egress IP; stopped the moment the IP is released, so a fenced node stops claiming it. */
  private final Map<String, Process> announcers = new ConcurrentHashMap<>();

  /** With iptables-nft, the default of kube-proxy's iptables wrapper and of Debian (tests; the agent detects it). */
  public NodeDataplane(Kernel kernel, DataplaneSettings settings) {
    this(kernel, settings, IptablesBackend.NFT);
  }

  /** @param iptables the backend the node's rules are in ({@link IptablesBackend#detect}) */
  public NodeDataplane(Kernel kernel, DataplaneSettings settings, IptablesBackend iptables) {
    this(kernel, settings, iptables, ArpSender.NONE);
  }

  /** @param firstArp sends an egress IP's first gratuitous ARP from the agent itself ({@code arping} repeats it) */
  public NodeDataplane(Kernel kernel, DataplaneSettings settings, IptablesBackend iptables,
      ArpSender firstArp) {
    this.kernel = kernel;
    this.settings = settings;
    this.iptables = iptables;
    this.firstArp = firstArp;
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

  /**
   * Removes everything of natgate's from the kernel (uninstall), looking at it first, both iptables backends too. In
   * three steps, so that no packet of a connection this node steered leaves with its pod's own address
   * ({@link SteeredConnections}): the base first (nothing steered any more; the base still drops the rest of such
   * connections), then their conntrack entries (their next packets start new ones, which the node's own masquerade
   * takes, as without natgate), then the base.
   */
  public synchronized Result removeAll() {
    wanted = Renderer.base(settings);
    repair();
    forgetSteeredConnections();
    wanted = KernelPlan.EMPTY;
    return repair();
  }

  /** Best effort: the rest of the uninstall goes on whatever conntrack says. */
  private void forgetSteeredConnections() {
    try {
      for (long mark : SteeredConnections.marks(kernel.run(null, "conntrack", "-L", "-f", "ipv4"),
          settings.markMask())) {
        try {
          kernel.run(null, SteeredConnections.delete(mark));
        } catch (Kernel.KernelException e) {
          if (!e.getMessage().contains("0 flow entries")) { // ended meanwhile: nothing left to delete
            throw e;
          }
        }
      }
    } catch (Kernel.KernelException e) {
      LOG.warnf("could not forget the connections this node steered (their next packets may leave with their pods' "
          + "own addresses): %s", e.getMessage());
    }
  }

  /**
   * Releases every egress IP held here (self-fencing) at once, with one {@code ip} command of its own, without
   * waiting for an apply in progress; rules stay. Kept until {@link #unfence()}. The next apply brings the rest of
   * natgate's records (the held set) up to date.
   */
  public void fence() {
    synchronized (refreshLock) {
      synchronized (holdLock) {
        fenced = true;
        kernelChanged.set(true);
        announcers.values().forEach(Process::destroy);
        Set<String> candidates = new TreeSet<>(mayHold);
        candidates.addAll(wanted.held());
        if (candidates.isEmpty()) {
          return;
        }
        // One command, whatever is there: the release never fails for an address an apply removed meanwhile.
        var script = new StringBuilder();
        candidates.forEach(ip -> script.append(Changes.releaseAddress(ip, settings)));
        Kernel.Prepared release = readyRelease;
        readyRelease = null;
        runReady(release, RELEASE_TIMEOUT, script.toString(), "ip", "-batch", "-");
        mayHold.clear();
      }
    }
  }

  /**
   * Announces and adds egress IPs this node was just decided to hold, ahead of the apply that brings the rest up to
   * date (its own pods' steering): a standby's SNAT is in place already, so traffic flows once the address is here.
   * The first gratuitous ARP goes out before the two commands (the held set's record, then the address), from the
   * agent itself: the external neighbours' replies are translated by conntrack with or without the address; the
   * directors' tunnel ends at the address, so their packets flow from the address on. The two commands were started
   * ahead ({@link #prepareAhead}) when they could be. Only IPs the last applied plan SNATs to; ends a fence, as the
   * apply would. A fence serialized after it (the same thread) removes them again.
   *
   * @return the IPs added
   */
  public List<String> take(Set<String> ips) {
    List<String> ready = ips.stream().filter(translating::contains).sorted().toList();
    if (ready.isEmpty()) {
      return ready;
    }
    synchronized (holdLock) {
      fenced = false;
      mayHold.addAll(ready); // before the command, as in hold
      ready.forEach(firstArp::send);
      Kernel.Prepared record = readyRecord;
      Kernel.Prepared address = readyAddress;
      readyRecord = null;
      readyAddress = null;
      runReady(record, null, Changes.recordHeld(ready), "ipset", "-exist", "restore"); // recorded before it is added
      runReady(address, null, Changes.hold(ready, settings), "ip", "-batch", "-");
      prepareRelease();
      ready.forEach(this::announce);
    }
    return ready;
  }

  /**
   * Runs a command started ahead, or (none, or it failed: these commands are idempotent) starts it now; within
   * {@code limit} (null: the kernel's own).
   */
  private void runReady(Kernel.Prepared ready, Duration limit, String stdin, String... command) {
    if (ready != null) {
      try {
        if (limit == null) {
          ready.run(stdin);
        } else {
          ready.runWithin(limit, stdin);
        }
        return;
      } catch (Kernel.KernelException e) {
        LOG.debugf("%s started ahead failed, run again: %s", String.join(" ", command), e.getMessage());
      }
    }
    if (limit == null) {
      kernel.run(stdin, command);
    } else {
      kernel.runWithin(limit, stdin, command);
    }
  }

  /**
   * After an apply: while some IP this node could take over has its SNAT in place and is not held here, the take's
   * two commands wait, started; otherwise none does. So does the fence's while it may hold an IP: a fence as quick
   * as a take keeps the holder's release ahead of a standby's take by the takeover margin, on a loaded node too
   * (starting {@code ip} took 25-773 ms there). Under {@code holdLock}.
   */
  private void prepareAhead(KernelPlan applied) {
    if (!kernel.local()) {
      return; // a test's data plane in a lab namespace: nothing left running there that the lab did not start
    }
    boolean standby = translating.stream().anyMatch(ip -> !applied.held().contains(ip));
    if (standby && readyRecord == null) {
      readyRecord = kernel.prepare("ipset", "-exist", "restore");
      readyAddress = kernel.prepare("ip", "-batch", "-");
    } else if (!standby && readyRecord != null) {
      readyRecord.cancel();
      readyAddress.cancel();
      readyRecord = null;
      readyAddress = null;
    }
    if (!applied.held().isEmpty() || !mayHold.isEmpty()) {
      prepareRelease();
    } else if (readyRelease != null) {
      readyRelease.cancel();
      readyRelease = null;
    }
  }

  private void prepareRelease() {
    if (readyRelease == null && kernel.local()) {
      readyRelease = kernel.prepare("ip", "-batch", "-");
    }
  }

  /** Allows holding egress IPs again: the next {@link #apply} takes them back. */
  public void unfence() {
    synchronized (holdLock) {
      fenced = false;
    }
  }

  /**
   * Extends the lifetime of the egress IPs the last apply added here (after each heartbeat). Only those: for IPv4,
   * {@code ip address change} adds an address that is missing, and an address added here, not by an apply, would
   * go unannounced (no gratuitous ARP: the neighbours keep the previous holder) and make the next apply's add fail
   * ("Address already assigned"), which is what a failover after a fence did before (4.6 s instead of 0.5 s).
   */
  public void refreshHeld() {
    synchronized (refreshLock) {
      var script = new StringBuilder();
      synchronized (holdLock) {
        if (settings.addressLifetimeSeconds() == 0 || fenced || refreshable.isEmpty()) {
          return;
        }
        refreshable.forEach(ip -> script.append("address change ").append(ip).append("/32")
            .append(settings.addressOptions()).append('\n'));
      }
      kernel.run(script.toString(), "ip", "-force", "-batch", "-");
    }
  }

  public boolean fenced() {
    return fenced;
  }

  /** Ends the gratuitous ARPs still repeating (a restart hands the addresses over; they stay meanwhile). */
  public void stopAnnouncing() {
    announcers.values().forEach(Process::destroy);
    announcers.clear();
  }

  /** Stops announcing (the kernel state stays). */
  public void close() {
    stopAnnouncing();
    synchronized (holdLock) {
      if (readyRecord != null) {
        readyRecord.cancel();
        readyAddress.cancel();
      }
      if (readyRelease != null) {
        readyRelease.cancel();
      }
    }
    if (firstArp instanceof GratuitousArp own) {
      own.close();
    }
  }

  /**
   * Whether this kernel's ipset has a set type (hash:net,net is a module some kernels leave out): tried once with a
   * set created and destroyed at once.
   */
  /** The type of the allow lists' names' sets this kernel has: {@link DestinationSets#TYPE}, else the port type. */
  public String nameSetType() {
    return supports(DestinationSets.TYPE) ? DestinationSets.TYPE
        : supports(DestinationSets.PORT_TYPE) ? DestinationSets.PORT_TYPE : null;
  }

  public boolean supports(String setType) {
    try {
      kernel.run(null, "ipset", "create", "natgate-probe", setType, "timeout", "0");
      kernel.run(null, "ipset", "destroy", "natgate-probe");
      return true;
    } catch (RuntimeException e) {
      return false;
    }
  }

  public DataplaneSettings settings() {
    return settings;
  }

  public IptablesBackend iptables() {
    return iptables;
  }

  public KernelPlan wanted() {
    return wanted;
  }

  private Result converge() {
    KernelPlan target = fenced ? withoutHeld(wanted) : wanted;
    try {
      if (kernelChanged.getAndSet(false)) {
        trusted = null;
      }
      boolean looked = trusted == null;
      boolean staleRemoved = false;
      Observed now = looked ? kernel.observe(settings, iptables) : trusted;
      Changes changes = Changes.between(now, target, settings);
      Set<String> handingOver = target.handingOver();
      announcers.entrySet().removeIf(a -> {
        boolean stop = !a.getValue().isAlive() || !target.held().contains(a.getKey())
            || handingOver.contains(a.getKey());
        if (stop) {
          a.getValue().destroy();
        }
        return stop;
      });
      var held = new AtomicBoolean(true);
      boolean refreshedLeaving;
      synchronized (holdLock) {
        refreshedLeaving = !target.held().containsAll(refreshable);
      }
      if (refreshedLeaving) {
        synchronized (refreshLock) { // before the release: no refresh in flight or after puts a released IP back
          synchronized (holdLock) {
            refreshable.retainAll(target.held());
          }
        }
      }
      if (!changes.isEmpty()) {
        kernel.apply(changes, iptables, () -> held.set(hold(changes)));
      }
      trusted = held.get() ? Observed.after(target, now.uplinkMtu()) : null;
      translating = target.translatedTo();
      if (looked) {
        // Looking at the kernel anyway: our chains in the other backend (left by a run that chose it) go too, once
        // ours are in place in this one (so the node's own masquerade never gets those connections in between).
        staleRemoved = !kernel.removeChains(iptables.other()).isEmpty();
      }
      synchronized (holdLock) {
        if (!fenced) {
          mayHold.retainAll(target.held());
        }
        refreshable.clear();
        if (trusted != null && trusted.held() != null) { // null: an empty plan, nothing held
          trusted.held().stream().filter(target.held()::contains).forEach(refreshable::add);
        }
        prepareAhead(target);
      }
      return new Result(!changes.isEmpty() || staleRemoved, held.get() ? changes.announce() : List.of());
    } catch (RuntimeException e) {
      trusted = null;
      synchronized (holdLock) {
        refreshable.clear(); // not known to be there: a refresh would add it unannounced
      }
      throw e;
    }
  }

  /** Step 5 of {@link Changes}: adds the egress IPs and announces them, unless fenced meanwhile (then false). */
  private boolean hold(Changes changes) {
    synchronized (holdLock) {
      if (fenced && !changes.hold().isEmpty()) {
        return false;
      }
      mayHold.addAll(changes.announce()); // before the command: a fence racing with a timeout must still remove them
      kernel.batch("ip", changes.hold());
      changes.announce().forEach(this::announce);
      return true;
    }
  }

  /**
   * Gratuitous ARP so that neighbours (the next hop, other nodes) move the IP's entry here at once: the first from
   * the agent itself, then {@code arping} repeats it for 3 s, because a neighbour may still resolve the IP to a
   * previous holder whose agent died (until the kernel expires that address) and must be corrected again. Started,
   * not waited for.
   */
  private void announce(String ip) {
    firstArp.send(ip);
    Process previous = announcers.put(ip, kernel.start("arping", "-U", "-S", ip, "-i", settings.uplink(), "-c", "7",
        "-W", "0.5", ip));
    if (previous != null) {
      previous.destroy();
    }
  }

  private static KernelPlan withoutHeld(KernelPlan plan) {
    return new KernelPlan(plan.sets(), plan.rules(), new TreeSet<>(), plan.routes(), plan.markRules(), plan.tunnel(),
        plan.sysctls());
  }
}
