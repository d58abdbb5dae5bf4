package io.natgate.agent;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.fabric8.kubernetes.client.dsl.base.PatchContext;
import io.fabric8.kubernetes.client.dsl.base.PatchType;
import io.fabric8.kubernetes.client.informers.ResourceEventHandler;
import io.fabric8.kubernetes.client.informers.SharedIndexInformer;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.natgate.Defaults;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import io.natgate.api.v1alpha1.EgressNodeStateStatus;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.api.v1alpha1.SnatPortUse;
import io.natgate.cni.CniEndpoint;
import io.natgate.cni.LocalPods;
import io.natgate.connlog.ConnectionLog;
import io.natgate.dataplane.AddressProbe;
import io.natgate.dataplane.DataplaneSettings;
import io.natgate.dataplane.IptablesBackend;
import io.natgate.dataplane.Kernel;
import io.natgate.dataplane.KernelPlan;
import io.natgate.dataplane.ArpSender;
import io.natgate.dataplane.GratuitousArp;
import io.natgate.dataplane.NodeDataplane;
import io.natgate.dataplane.DestinationSets;
import io.natgate.dataplane.Renderer;
import io.natgate.dataplane.SnatPorts;
import io.natgate.dns.DnsPath;
import io.natgate.peers.HoldDecision;
import io.natgate.peers.PeerKey;
import io.natgate.peers.PeerLiveness;
import io.natgate.peers.ReadySteering;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.jboss.logging.Logger;

/**
 * The node agent: watches its node's EgressNodeStates (one per gateway), applies them together to the kernel,
 * reports on each the applied generation (or the error) in its status, renews its Lease, fences itself when it
 * cannot, and repairs drift periodically.
 * All kernel work happens on one thread, so applies never overlap. Status reports have a thread of their own (and
 * retry until the server has what was applied); so has fencing, which never waits for either (see
 * {@link NodeDataplane#fence()}).
 */
public final class Agent implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(Agent.class);
  private static final ObjectMapper JSON = new ObjectMapper();

  /** What the agent needs to know; see {@code natgate.agent.*} and {@code natgate.heartbeat.*}. */
  public record Settings(String nodeName, String nodeIP, String uplink, String leaseNamespace, Duration renewInterval,
      Duration heartbeatTimeout, Duration fenceAfter, Duration repairInterval, int tunnelPort, int markMask,
      int tableBase, int rulePriority, PeerLiveness.Settings peers) {
    /** The defaults ({@link Defaults}) for a node. */
    public static Settings defaults(String nodeName, String nodeIP, String uplink) {
      return new Settings(nodeName, nodeIP, uplink, Defaults.HEARTBEAT_NAMESPACE, Defaults.renewInterval(),
          Defaults.heartbeatTimeout(), Defaults.fenceAfter(), Defaults.repairInterval(), Defaults.TUNNEL_PORT,
          Defaults.markMask(Defaults.MARK_MASK), Defaults.TABLE_BASE, Defaults.RULE_PRIORITY,
          PeerLiveness.Settings.defaults());
    }

    public Settings withRepairInterval(Duration interval) {
      return new Settings(nodeName, nodeIP, uplink, leaseNamespace, renewInterval, heartbeatTimeout, fenceAfter,
          interval, tunnelPort, markMask, tableBase, rulePriority, peers);
    }
  }

  /**
   * How long a stopping agent waits for another node to answer for an egress IP that node claimed: the taking node
   * adds the address with its apply, once its forwarding of this node's replies is in place (tens of ms on a quiet
   * node, hundreds loaded). Below the addresses' lifetime (at least 1 s, renewed right before the wait), and with the
   * rest of {@link #leave} far within the DaemonSet's termination grace (10 s): a peer that never answers does not
   * hold up the stop.
   */
  static final Duration HANDOVER_ANSWER_WITHIN = Duration.ofMillis(800);

  private final KubernetesClient client;
  private final KubernetesClient heartbeatClient;
  private final Settings settings;
  private final Kernel kernel;
  private final MeterRegistry metrics;
  private final ScheduledExecutorService worker =
      Executors.newSingleThreadScheduledExecutor(r -> new Thread(r, "natgate-agent"));
  private final AtomicBoolean applyPending = new AtomicBoolean();
  /** When the change that the next apply takes in was first heard (System.nanoTime; 0: none waiting). */
  private final AtomicLong heardAt = new AtomicLong();
  /** Renews the egress IPs' lifetimes after each heartbeat, off the heartbeat thread and never queued twice. */
  private final ScheduledExecutorService refresher =
      Executors.newSingleThreadScheduledExecutor(r -> new Thread(r, "natgate-address-lifetime"));
  private final AtomicBoolean refreshPending = new AtomicBoolean();
  /** Fencing and unfencing, in the order the heartbeat decided them, behind nothing else. */
  private final ExecutorService fencer = Executors.newSingleThreadExecutor(r -> new Thread(r, "natgate-fence"));
  /** Status reports: one PATCH at a time, retried with backoff, never in the way of the kernel work. */
  private final ScheduledExecutorService reporter =
      Executors.newSingleThreadScheduledExecutor(r -> new Thread(r, "natgate-report"));
  private final AtomicBoolean reportPending = new AtomicBoolean();
  private final Backoff reportBackoff = new Backoff(Duration.ofSeconds(1), Duration.ofSeconds(30));
  private volatile Outcome outcome;
  /** The names' sets' counts as last reported (a copy; the counting task keeps its own). */
  private volatile NameCounts nameCounts = new NameCounts();
  private final NameCounts counting = new NameCounts();
  private final AtomicReference<String> lastError = new AtomicReference<>();
  /** Why the agent cannot watch its node's states (403, API server down), or null while it watches. */
  private final AtomicReference<String> watchError = new AtomicReference<>();
  private NodeDataplane dataplane;
  /** The type of the allow lists' names' sets this kernel has (probed at start; null: none). */
  private volatile String nameSets = DestinationSets.TYPE;
  private Heartbeat heartbeat;
  private volatile PeerLiveness peers;
  /** Egress IPs the kernel may hold now: peers are told of them until they are gone there, not just decided. */
  private final AtomicReference<Set<String>> inKernel = new AtomicReference<>(Set.of());
  private volatile SharedIndexInformer<EgressNodeState> informer;
  /** Watches until it can, waits for the first renewal and the kernel's probes, then applies; see {@link #close()}. */
  private Thread connector;
  /** Counted down once {@link #start} has probed the kernel and built the data plane. */
  private final CountDownLatch probed = new CountDownLatch(1);
  private volatile boolean synced;
  private Timer applyTimer;
  private Counter applyErrors;
  private Path cniSocket;
  private List<String> clusterCidrs = List.of();
  private volatile LocalPods localPods;
  private volatile boolean stopped; // uninstalled or leaving: nothing is applied any more
  private CniEndpoint cniEndpoint;
  private ConnectionLog.Settings connectionLogSettings; // null: no connection log
  private ConnectionLog connectionLog;
  private DnsPath.Settings dnsSettings; // null: no DNS path
  private DnsPath dns;
  private SnatPorts snatPorts = SnatPorts.KERNEL;

  /** @param heartbeatClient a client with short timeouts and no retries: a slow renewal must count as a failed one */
  public Agent(KubernetesClient client, KubernetesClient heartbeatClient, Settings settings, Kernel kernel,
      MeterRegistry metrics) {
    this.client = client;
    this.heartbeatClient = heartbeatClient;
    this.settings = settings;
    this.kernel = kernel;
    this.metrics = metrics;
  }

  /**
   * Also answers the natgate-cni plugin at {@code socket} and adds this node's selected pods to its states itself
   * (io.natgate.cni), before the operator does. Call before {@link #start}.
   */
  public Agent withCni(Path socket, List<String> clusterCidrs) {
    this.cniSocket = socket;
    this.clusterCidrs = List.copyOf(clusterCidrs);
    return this;
  }

  /** Records the connections this node translates for gateways with the log on (before {@link #start}). */
  public Agent withConnectionLog(ConnectionLog.Settings settings) {
    connectionLogSettings = settings;
    return this;
  }

  /** Follows the DNS answers of pods whose gateway allows names (io.natgate.dns), before {@link #start}. */
  public Agent withDns(DnsPath.Settings settings) {
    dnsSettings = settings;
    return this;
  }

  /** SNATs to this range of source ports (natgate.agent.snat-ports) rather than the kernel's (before {@link #start}). */
  public Agent withSnatPorts(SnatPorts ports) {
    snatPorts = ports;
    return this;
  }

  /**
   * Starts the heartbeat and the watch of the node's states now (in the background), then probes the kernel: the first
   * renewal, the states' list and the probes overlap (each took a few hundred ms of a start, one after the other).
   * Nothing is applied, and no egress IP held, before the first renewal succeeded.
   */
  public Agent start() {
    // The uplink first: a node whose uplink cannot be found fails here, before its Lease tells the operator it lives.
    String uplink = settings.uplink() != null ? settings.uplink() : uplinkHolding(settings.nodeIP());
    // Whether to hold is decided by PeerLiveness (which reads the Lease's freshness for groups too small for a
    // quorum); a renewal after an outage re-reports what was held meanwhile.
    heartbeat = new Heartbeat(heartbeatClient, settings.leaseNamespace(), settings.nodeName(),
        settings.renewInterval(), settings.heartbeatTimeout(), settings.fenceAfter(),
        () -> { }, this::applyLater, () -> { }).start();
    connector = new Thread(this::connect, "natgate-agent-connect");
    connector.setDaemon(true);
    connector.start();
    try {
      probe(uplink);
    } catch (RuntimeException e) {
      close(); // no Lease renewed for an agent that failed to start
      throw e;
    }
    long refresh = settings.renewInterval().toMillis();
    refresher.scheduleWithFixedDelay(this::refreshLater, refresh, refresh, TimeUnit.MILLISECONDS);
    probed.countDown();
    return this;
  }

  /** The kernel's iptables backend and set types, the data plane, the connection log and the DNS path, the meters. */
  private void probe(String uplink) {
    // Egress IPs outlive a dead agent by at most this (whole seconds: the kernel's granularity).
    int lifetime = (int) Math.max(1, (settings.heartbeatTimeout().toMillis() + 999) / 1000);
    DataplaneSettings dp = new DataplaneSettings(uplink, Defaults.TUNNEL_DEVICE, settings.tunnelPort(),
        settings.markMask(), settings.tableBase(), settings.rulePriority(), lifetime, snatPorts);
    IptablesBackend.Choice iptables = IptablesBackend.detect(kernel);
    LOG.infof("iptables backend %s", iptables);
    // Its own gratuitous ARP needs a socket in the node's network namespace: this process's, or none.
    dataplane = new NodeDataplane(kernel, dp, iptables.backend(),
        kernel.local() ? new GratuitousArp(uplink) : ArpSender.NONE);
    nameSets = dataplane.nameSetType();
    if (!DestinationSets.TYPE.equals(nameSets)) {
      LOG.warnf("this kernel's ipset has no %s: allow lists' DNS names %s here (their other connections are "
          + "refused); CIDR entries are enforced", DestinationSets.TYPE, nameSets == null ? "match nothing"
          : "allow only the ports their entries list (" + nameSets + "); a name with no ports allows nothing");
    }
    if (connectionLogSettings != null) {
      connectionLog = new ConnectionLog(kernel, settings.nodeName(), connectionLogSettings, metrics, snatPorts);
      connectionLog.onShortOfPortsChanged(this::reportLater); // the operator turns it into a condition and an Event
    }
    if (dnsSettings != null && settings.nodeIP() != null) {
      dns = new DnsPath(settings.nodeName(), settings.nodeIP(), dnsSettings, kernel, metrics);
      if (connectionLog != null) {
        connectionLog.namesFrom(dns::nameOf); // denied records name what the pods were answered
      }
    } else if (dnsSettings != null) {
      LOG.warn("no node IP (natgate.agent.node-ip): no DNS path, names in allow lists allow nothing on this node");
    }
    registerMetrics();
    LOG.infof("natgate agent for node %s: uplink %s, tunnel natgate0 (VXLAN-GPE, UDP %d)", settings.nodeName(),
        uplink, settings.tunnelPort());
  }

  /**
   * Lists and watches the node's states (and natgate-cni's pods) while the first renewal is in flight; then, once it
   * succeeded and the kernel is probed, starts deciding what to hold and applies.
   */
  private void connect() {
    try {
      watch();
      while (!heartbeat.awaitFirstRenewal(Duration.ofSeconds(10))) {
        LOG.warn("no Lease renewal yet: waiting for the API server before taking any egress IP");
      }
      probed.await();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return;
    }
    synced = true;
    peers = new PeerLiveness(settings.nodeName(), settings.nodeIP(), settings.peers(), metrics, this::currentStates,
        () -> !heartbeat.lost(), this::onHoldingChanged, inKernel::get);
    peers.start(); // once assigned: its first decision comes back to onHoldingChanged, which reads it
    applyLater(); // also when there is no state: the base goes in, and what an earlier run left beyond it goes
    long repair = settings.repairInterval().toMillis();
    worker.scheduleWithFixedDelay(this::repair, repair, repair, TimeUnit.MILLISECONDS);
    long count = Defaults.NAME_COUNT_INTERVAL_S;
    reporter.scheduleWithFixedDelay(this::countNames, count, count, TimeUnit.SECONDS);
    listenToPeers();
  }

  /** Starts natgate-cni's pods' informers and the states', retrying until the API server lets it. */
  private void watch() throws InterruptedException {
    try {
      if (cniSocket != null) {
        // Listed before the states: the first apply already keeps the pods a previous run added early.
        localPods = new LocalPods(client, settings.nodeName(), clusterCidrs, this::applyLater, this::applyNow,
            cniSocket.resolveSibling("cni-pods.json")).start();
        cniEndpoint = new CniEndpoint(cniSocket, localPods);
      }
      var backoff = new Backoff(Duration.ofSeconds(1), Duration.ofSeconds(30));
      while (informer == null) {
        try {
          // spec.nodeName is a selectable field: the API server sends this node's states only.
          informer = client.resources(EgressNodeState.class).withField("spec.nodeName", settings.nodeName())
              .inform(handler());
        } catch (RuntimeException e) {
          Duration wait = backoff.next();
          watchError.set("cannot watch EgressNodeStates: " + e.getMessage());
          LOG.errorf("cannot watch this node's EgressNodeStates (retrying in %d s; nothing is applied meanwhile): %s",
              wait.toSeconds(), e.getMessage());
          Thread.sleep(wait.toMillis());
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException("CNI endpoint at " + cniSocket, e);
    }
    if (watchError.getAndSet(null) != null) {
      LOG.info("watching this node's EgressNodeStates now");
    }
  }

  /** Reads the peer key, waiting for the operator to create it, and starts the heartbeats with it. */
  private void listenToPeers() {
    try {
      byte[] key;
      for (int attempt = 0; (key = readPeerKey()) == null; attempt++) {
        if (attempt == 0) {
          LOG.warnf("no Secret %s/%s yet (the operator creates it): waiting, holding only in groups too small for a "
              + "quorum", settings.leaseNamespace(), PeerKey.SECRET);
        }
        Thread.sleep(1000);
      }
      peers.listen(key);
      if (localPods != null) {
        localPods.listen(key, Defaults.CNI_SOURCE_PORT, kernel, metrics); // new pods' gateways, told at ADD
      }
      startDns(key);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** The DNS path authenticates its pairs with the peer key; a port it cannot bind is logged, never fatal. */
  private void startDns(byte[] key) {
    if (dns == null) {
      return;
    }
    try {
      dns.start(key);
      LOG.infof("DNS proxy on %s:%d, pairs on UDP %d, upstream %s", settings.nodeIP(), dnsSettings.proxyPort(),
          dnsSettings.pairPort(), dnsSettings.upstream());
    } catch (RuntimeException e) {
      LOG.errorf("DNS path not started (queries of pods whose gateway allows names fail): %s", e.getMessage());
    }
  }

  private byte[] readPeerKey() {
    try {
      return PeerKey.read(client, settings.leaseNamespace());
    } catch (KubernetesClientException e) {
      LOG.warnf("could not read the peer key: %s", e.getMessage());
      return null;
    }
  }

  private List<EgressNodeStateSpec> currentStates() {
    var i = informer;
    return i == null ? List.of() : i.getStore().list().stream().map(EgressNodeState::getSpec)
        .filter(sp -> sp != null && settings.nodeName().equals(sp.nodeName)).toList();
  }

  /** Releasing everything takes the fencing path (behind nothing); any other change is an apply of the new state. */
  private void onHoldingChanged(Set<String> holding) {
    if (holding.isEmpty()) {
      fencer.execute(() -> {
        fence();
        inKernel.set(Set.of());
      });
    } else {
      Set<String> added = new TreeSet<>(holding);
      added.removeAll(inKernel.get());
      // A stopping member keeps what it hands over until this node has it: the apply adds it once the forwarding of
      // that member's replies is in place, not ahead of it (those replies would meet resets meanwhile).
      added.removeAll(peers.handedOver().keySet());
      if (!added.isEmpty()) {
        fencer.execute(() -> takeAhead(added)); // after any fence decided before, before any decided later
      }
      applyLater();
    }
  }

  /**
   * A takeover's addresses and gratuitous ARP at once, on the fencing thread, rather than after the worker's apply
   * (its {@code ipset} and {@code iptables-restore} took 27-240 ms of a failover on a quiet node, over 1 s loaded).
   * The apply that follows does the rest.
   */
  private void takeAhead(Set<String> ips) {
    if (!holding().containsAll(ips)) {
      return; // decided otherwise meanwhile: the queued apply follows the new decision
    }
    inKernel.getAndUpdate(was -> union(was, ips)); // claimed before it is there, as in applyCurrent
    try {
      List<String> taken = dataplane.take(ips);
      if (!taken.isEmpty()) {
        LOG.infof("took over %s ahead of the apply", taken);
      }
    } catch (RuntimeException e) {
      LOG.warnf("adding %s ahead of the apply failed (the apply adds it): %s", ips, e.getMessage());
    }
  }

  private Set<String> holding() {
    var p = peers;
    return p == null ? Set.of() : p.holding();
  }

  private ResourceEventHandler<EgressNodeState> handler() {
    return new ResourceEventHandler<>() {
      @Override
      public void onAdd(EgressNodeState s) {
        applyLater();
      }

      @Override
      public void onUpdate(EgressNodeState old, EgressNodeState s) {
        if (!Objects.equals(old.getMetadata().getGeneration(), s.getMetadata().getGeneration())) {
          applyLater();
        } else if (!Objects.equals(old.getStatus(), s.getStatus())) {
          reportLater(); // someone else changed what we reported
        }
      }

      @Override
      public void onDelete(EgressNodeState s, boolean unknown) {
        applyLater();
      }
    };
  }

  /** True once the agent has applied its node's current states (or their absence) without error. */
  public boolean ready() {
    return synced && lastError.get() == null && !applyPending.get();
  }

  public String lastError() {
    return lastError.get() != null ? lastError.get() : watchError.get();
  }

  /** Why the agent cannot watch its node's states, or null while it can (or is still waiting for its Lease). */
  public String watchError() {
    return watchError.get();
  }

  public NodeDataplane dataplane() {
    return dataplane;
  }

  /** Applies the node's current state on the agent's thread; fails when it could not (the CNI plugin then fails). */
  public CompletableFuture<Void> applyNow() {
    return CompletableFuture.runAsync(() -> {
      if (!applyCurrent()) {
        throw new IllegalStateException(Objects.requireNonNullElse(lastError.get(), "not connected to the API server yet"));
      }
    }, worker);
  }

  /**
   * The agent is being uninstalled: removes everything natgate put into this node's kernel, the base
   * ({@link Renderer#base}) too, and applies nothing after. (A restart keeps the kernel state, but for the egress
   * IPs {@link #leave} hands over: traffic flows on while the next agent starts.)
   */
  public void uninstall() {
    try {
      CompletableFuture.runAsync(() -> {
        stopped = true;
        dataplane.removeAll();
      }, worker).get(30, TimeUnit.SECONDS);
      LOG.info("uninstalled: natgate's kernel state removed");
    } catch (ExecutionException | TimeoutException e) {
      LOG.errorf("uninstall could not remove natgate's kernel state: %s", e.getMessage());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private void applyLater() {
    heardAt.compareAndSet(0, System.nanoTime());
    if (applyPending.compareAndSet(false, true)) {
      worker.execute(this::applyCurrent);
    }
  }

  private void refreshLater() {
    var p = peers;
    if (p != null && p.holdingDecidedLately() && refreshPending.compareAndSet(false, true)) {
      refresher.execute(() -> {
        refreshPending.set(false);
        try {
          dataplane.refreshHeld();
        } catch (RuntimeException e) {
          LOG.warnf("could not renew the egress IPs' lifetime: %s", e.getMessage());
        }
      });
    }
  }

  /** Releases the egress IPs now (on the fencing thread), then lets the worker bring the rest up to date. */
  private void fence() {
    try {
      long start = System.nanoTime();
      dataplane.fence();
      LOG.infof("fenced: egress IPs released in %d ms", (System.nanoTime() - start) / 1_000_000);
    } catch (RuntimeException e) {
      LOG.errorf("releasing the egress IPs failed: %s", e.getMessage());
      lastError.set(e.getMessage());
    }
    applyLater();
  }

  private boolean applyCurrent() {
    applyPending.set(false);
    long heard = heardAt.getAndSet(0);
    long started = System.nanoTime();
    if (stopped) {
      return false;
    }
    if (peers == null) {
      return false; // events of the initial list, renewals before connect() is done: it applies right after
    }
    List<EgressNodeState> states = ownStates();
    Set<String> holding = holding();
    Timer.Sample sample = Timer.start(metrics);
    boolean applied;
    try {
      Map<String, ? extends NodeGatewayState> wanted = wanted(states, holding);
      if (connectionLog != null) {
        connectionLog.update(wanted); // listening before the connections are marked
      }
      KernelPlan plan = withDns(Renderer.render(wanted, dataplane().settings(), nameSets), states);
      inKernel.getAndUpdate(was -> union(was, plan.held())); // while the apply runs, either may be there
      if (!holding.isEmpty() && dataplane.fenced()) {
        // Decided to hold again: this apply adds the IPs and announces them (a fence decided later still wins:
        // the apply adds nothing once fenced).
        dataplane.unfence();
      }
      NodeDataplane.Result result = dataplane.apply(plan);
      inKernel.set(dataplane.fenced() ? Set.of() : Set.copyOf(plan.held()));
      long nanos = sample.stop(applyTimer);
      lastError.set(null);
      if (result.changed()) {
        LOG.infof("applied %d gateway(s) in %d ms (%d ms after the change was heard): %d rules, %d set members, "
            + "holding %s", wanted.size(), nanos / 1_000_000, (System.nanoTime() - (heard == 0 ? started : heard))
            / 1_000_000, plan.ruleCount(), plan.setMembers(), plan.held());
      } else {
        LOG.debugf("nothing to apply (%d ms)", nanos / 1_000_000);
      }
      outcome = Outcome.applied(states, holding);
      applied = true;
    } catch (RuntimeException e) {
      sample.stop(applyTimer);
      applyErrors.increment();
      lastError.set(e.getMessage());
      LOG.errorf("apply failed (retrying in 1 s): %s", e.getMessage());
      outcome = Outcome.failed(e.getMessage(), dataplane.wanted().held());
      worker.schedule(this::applyLater, 1, TimeUnit.SECONDS);
      applied = false;
    }
    reportLater();
    return applied;
  }

  private List<EgressNodeState> ownStates() {
    return informer.getStore().list().stream()
        .filter(st -> st.getSpec() != null && settings.nodeName().equals(st.getSpec().nodeName)).toList();
  }

  /**
   * What to render, by gateway: the operator's states as held now, with natgate-cni's pods, and the steering toward
   * the other members' egress IPs kept ready.
   */
  private Map<String, ? extends NodeGatewayState> wanted(List<EgressNodeState> states, Set<String> holding) {
    Map<String, NodeGatewayState> byGateway = new TreeMap<>();
    var p = peers;
    Map<String, String> handedOver = p == null ? Map.of() : p.handedOver();
    states.forEach(st -> byGateway.put(st.getSpec().gateway, HoldDecision.withHolding(st.getSpec(), holding,
        settings.nodeName(), handedOver)));
    return ReadySteering.with(localPods == null ? byGateway : localPods.withLocalPods(byGateway), settings.nodeName());
  }

  /**
   * The agent stops for a restart (not an uninstall), make-before-break: it stops announcing the egress IPs of its
   * peer groups that it holds and tells its peers that it holds nothing and hands them over; the next node of each
   * succession takes an IP over with the forwarding of this node's replies in place; once that node claims it (at
   * most the takeover time) and answers ARP for it (at most {@link #HANDOVER_ANSWER_WITHIN}), this node releases it,
   * with its sources (its own pods among them) steered into the tunnel toward the IP ({@link HoldDecision#leaving}).
   * Meanwhile both have the address: the neighbours follow the new holder's gratuitous ARP, and the replies of the
   * connections this node translated (its own pods' too, until their steering is in, a few commands after the
   * release) reach the new holder and are forwarded back here. What arrives here for a handed-over IP that no
   * connection knows is dropped ({@link Renderer#handingOver}). Its pods are not steered before the release: the
   * tunnel toward an address this node still has would end here and steer them again. Applies nothing after;
   * everything else stays in the kernel for the next agent.
   */
  public void leave() {
    try {
      KernelPlan released = CompletableFuture.supplyAsync(() -> {
        stopped = true; // no apply after the one below
        if (informer == null || peers == null) {
          return null;
        }
        List<EgressNodeState> states = ownStates();
        Map<String, NodeGatewayState> leaving = new TreeMap<>();
        wanted(states, holding()).forEach((gateway, part) -> leaving.put(gateway,
            HoldDecision.leaving(part, settings.nodeName())));
        dataplane.stopAnnouncing(); // the new holder's gratuitous ARP must not be undone by this node's
        return withDns(Renderer.render(leaving, dataplane().settings(), nameSets), states);
      }, worker).get(10, TimeUnit.SECONDS);
      Set<String> handsOver = released == null ? Set.of() : difference(inKernel.get(), released.held());
      if (!handsOver.isEmpty()) {
        renewLifetimes();
      }
      if (peers != null) {
        peers.leave(handsOver);
      }
      if (released == null) {
        return;
      }
      KernelPlan plan = Renderer.handingOver(released, handsOver, dataplane().settings());
      Set<String> unclaimed = handsOver.isEmpty() ? Set.of()
          : peers.awaitClaimed(handsOver, settings.peers().timing().takeoverAfter());
      Set<String> unanswered = awaitAddedElsewhere(difference(handsOver, unclaimed));
      CompletableFuture.runAsync(() -> {
        dataplane.apply(plan);
        inKernel.set(Set.copyOf(plan.held()));
      }, worker).get(10, TimeUnit.SECONDS);
      if (!handsOver.isEmpty()) {
        LOG.infof("stopping for a restart: released %s once claimed by a peer and added there (not claimed within the "
            + "takeover time: %s; claimed, not answered for within %d ms: %s), their pods steered after them; "
            + "holding %s", handsOver, unclaimed, HANDOVER_ANSWER_WITHIN.toMillis(), unanswered, plan.held());
      }
    } catch (ExecutionException | TimeoutException e) {
      LOG.errorf("could not hand the egress IPs over before stopping (a standby takes them after the peer timeout): %s",
          e.getMessage());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** Renews the egress IPs' lifetimes now (a stopping agent's peers no longer trigger it): they outlive a wait. */
  private void renewLifetimes() {
    try {
      dataplane.refreshHeld();
    } catch (RuntimeException e) {
      LOG.warnf("could not renew the egress IPs' lifetime for the handover: %s", e.getMessage());
    }
  }

  /**
   * Waits until another node answers ARP for each of {@code claimed} ({@link AddressProbe}), at most
   * {@link #HANDOVER_ANSWER_WITHIN}; returns those it did not. A peer claims an IP as it decides to take it, before its
   * kernel has the address: released on the claim alone, the IP had no holder for the difference. The lifetimes are
   * renewed first, so that they outlive the wait.
   */
  private Set<String> awaitAddedElsewhere(Set<String> claimed) {
    if (claimed.isEmpty()) {
      return Set.of();
    }
    long start = System.nanoTime();
    renewLifetimes();
    Set<String> unanswered = AddressProbe.unanswered(kernel, dataplane.settings().uplink(), claimed,
        HANDOVER_ANSWER_WITHIN);
    if (!unanswered.isEmpty()) {
      LOG.warnf("stopping for a restart: no other node answered for %s within %d ms of its claim; released anyway "
          + "(new connections through it fail until the peer has the address)", unanswered,
          HANDOVER_ANSWER_WITHIN.toMillis());
    }
    LOG.infof("stopping for a restart: waited %d ms for another node to answer for %s",
        (System.nanoTime() - start) / 1_000_000, claimed);
    return unanswered;
  }

  /**
   * The plan plus the DNS path's redirect, after telling the path the operator's states as they are: the allow lists
   * and peers (pods natgate-cni added early are followed once the operator lists them: the gateway SNATs them only
   * then).
   */
  private KernelPlan withDns(KernelPlan plan, List<EgressNodeState> states) {
    if (dns == null) {
      return plan;
    }
    Map<String, NodeGatewayState> raw = new TreeMap<>();
    states.forEach(st -> raw.put(st.getSpec().gateway, st.getSpec()));
    dns.update(raw);
    return dns.addTo(plan, dataplane().settings().tunnelDevice());
  }

  private void repair() {
    try {
      if (dataplane.repair().changed()) {
        metrics.counter("natgate_agent_repairs_total").increment();
        LOG.warn("repaired kernel state that had drifted from what was applied");
      }
    } catch (RuntimeException e) {
      LOG.errorf("repair failed: %s", e.getMessage());
      applyLater();
    }
    reportLater(); // the status on the server drifts too (a lost PATCH, someone else's write)
  }

  /**
   * Counts the members of the names' sets this node keeps (one {@code ipset list -t}, only when there are any) and
   * reports when a number changed: the status follows the DNS path every few seconds at most, not every answer.
   */
  private void countNames() {
    try {
      boolean any = dataplane.wanted().sets().values().stream().anyMatch(s -> s.dynamic());
      var counted = any ? DestinationSets.entries(kernel.run(null, "ipset", "list", "-t")) : Map.<String, Integer>of();
      if (counting.update(counted, Instant.now())) {
        nameCounts = counting.copy();
        reportLater();
      }
    } catch (RuntimeException e) {
      LOG.warnf("could not count the names' sets: %s", e.getMessage());
    }
  }

  private void reportLater() {
    if (reportPending.compareAndSet(false, true)) {
      reporter.execute(this::reportAll);
    }
  }

  /** Writes each state's status where it differs from the last apply's outcome; retried with backoff until it is in. */
  private void reportAll() {
    reportPending.set(false);
    Outcome o = outcome;
    if (informer == null || o == null) {
      return;
    }
    boolean failed = false;
    for (EgressNodeState state : informer.getStore().list()) {
      EgressNodeStateStatus status = o.statusFor(state, nameCounts);
      if (status != null) {
        status.snatPortUse = shortOfPorts(state);
      }
      if (status == null || status.equals(state.getStatus())) {
        continue;
      }
      try {
        Map<String, Object> body = new java.util.HashMap<>();
        body.put("appliedGeneration", status.appliedGeneration);
        body.put("error", status.error); // null removes it
        body.put("held", status.held);
        body.put("resolvedNames", status.resolvedNames);
        body.put("snatPortUse", status.snatPortUse);
        long start = System.nanoTime();
        client.resources(EgressNodeState.class).withName(state.getMetadata().getName()).subresource("status")
            .patch(PatchContext.of(PatchType.JSON_MERGE), JSON.writeValueAsString(Map.of("status", body)));
        LOG.debugf("reported %s applied at generation %s in %d ms", state.getMetadata().getName(),
            status.appliedGeneration, (System.nanoTime() - start) / 1_000_000);
      } catch (KubernetesClientException | com.fasterxml.jackson.core.JsonProcessingException e) {
        failed = true;
        LOG.warnf("could not report status on %s (retrying): %s", state.getMetadata().getName(), e.getMessage());
      }
    }
    if (failed) {
      reporter.schedule(this::reportLater, reportBackoff.next().toMillis(), TimeUnit.MILLISECONDS);
    } else {
      reportBackoff.reset();
    }
  }

  /** The destinations of {@code state}'s egress IPs short of SNAT ports here, or null (none, or no log). */
  private List<SnatPortUse> shortOfPorts(EgressNodeState state) {
    var log = connectionLog;
    if (log == null || state.getSpec() == null) {
      return null;
    }
    Set<String> ips = new TreeSet<>();
    state.getSpec().snat.forEach(sn -> ips.add(sn.egressIP));
    List<SnatPortUse> uses = log.shortOfPorts().stream().filter(u -> ips.contains(u.destination().egressIP()))
        .map(u -> new SnatPortUse(u.destination().egressIP(), u.destination().toString(), u.steppedPercent()))
        .toList();
    return uses.isEmpty() ? null : uses;
  }

  private static Set<String> difference(Set<String> a, Set<String> b) {
    Set<String> d = new TreeSet<>(a);
    d.removeAll(b);
    return d;
  }

  private static Set<String> union(Set<String> a, Set<String> b) {
    Set<String> u = new TreeSet<>(a);
    u.addAll(b);
    return u;
  }

  private String uplinkHolding(String nodeIP) {
    if (nodeIP == null) {
      throw new IllegalStateException("set natgate.agent.node-ip (NATGATE_AGENT_NODE_IP, from status.hostIP) or "
          + "natgate.agent.uplink");
    }
    try {
      for (JsonNode link : JSON.readTree(kernel.run(null, "ip", "-j", "-4", "address", "show"))) {
        for (JsonNode a : link.path("addr_info")) {
          if (nodeIP.equals(a.path("local").asText())) {
            return link.path("ifname").asText();
          }
        }
      }
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
    throw new IllegalStateException("no interface holds the node IP " + nodeIP + ": set natgate.agent.uplink");
  }

  private void registerMetrics() {
    applyTimer = Timer.builder("natgate_agent_apply_seconds").description("Time to apply the node's state")
        .publishPercentileHistogram().register(metrics);
    applyErrors = Counter.builder("natgate_agent_apply_errors_total").description("Failed applies").register(metrics);
    metrics.gauge("natgate_agent_rules", this, a -> a.dataplane.wanted().ruleCount());
    metrics.gauge("natgate_agent_set_members", this, a -> a.dataplane.wanted().setMembers());
    metrics.gauge("natgate_agent_held_ips", this, a -> a.dataplane.fenced() ? 0 : a.dataplane.wanted().held().size());
    metrics.gauge("natgate_agent_heartbeat_age_seconds", this, a -> a.heartbeat == null ? -1 : a.heartbeat.ageSeconds());
  }

  @Override
  public void close() {
    if (connector != null) {
      connector.interrupt();
    }
    if (heartbeat != null) {
      heartbeat.close();
    }
    if (peers != null) {
      peers.close();
    }
    if (informer != null) {
      informer.close();
    }
    if (cniEndpoint != null) {
      cniEndpoint.close();
    }
    if (localPods != null) {
      localPods.close();
    }
    worker.shutdownNow();
    refresher.shutdownNow();
    fencer.shutdownNow();
    reporter.shutdownNow();
    if (dataplane != null) {
      dataplane.close();
    }
    if (connectionLog != null) {
      connectionLog.close();
    }
    if (dns != null) {
      dns.close();
    }
  }
}
