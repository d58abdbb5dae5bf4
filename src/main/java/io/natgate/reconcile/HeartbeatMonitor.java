package io.natgate.reconcile;

import io.fabric8.kubernetes.api.model.Node;
import io.fabric8.kubernetes.api.model.coordination.v1.Lease;
import io.javaoperatorsdk.operator.processing.event.Event;
import io.javaoperatorsdk.operator.processing.event.ResourceID;
import io.javaoperatorsdk.operator.processing.event.source.AbstractEventSource;
import io.javaoperatorsdk.operator.processing.event.source.IndexerResourceCache;
import io.javaoperatorsdk.operator.processing.event.source.informer.InformerEventSource;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.plan.LabelSelectors;
import io.natgate.plan.NodeReadiness;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.jboss.logging.Logger;

/**
 * Turns the agents' Leases into events. A dead agent writes nothing, so its Lease expiring is a moment in time,
 * not a watch event: every {@code tick} this compares the set of live agents with the last one and, when a node
 * died or came back, triggers the gateways that have it as a candidate (its readiness matters to no other; all of
 * them when the Node is not known). Renewals alone trigger nothing.
 */
final class HeartbeatMonitor extends AbstractEventSource<Void, EgressGateway> {
  private static final Logger LOG = Logger.getLogger(HeartbeatMonitor.class);
  private final InformerEventSource<Lease, EgressGateway> leases;
  private final IndexerResourceCache<EgressGateway> gateways;
  private final Function<String, Optional<Node>> nodes;
  private final AgentLiveness liveness;
  private final Duration tick;
  private ScheduledExecutorService timer;
  private volatile Set<String> live = Set.of();
  /** When this monitor saw each node's agent die (until it comes back): where the failover clock starts. */
  private final Map<String, Instant> deadSince = new ConcurrentHashMap<>();

  HeartbeatMonitor(InformerEventSource<Lease, EgressGateway> leases, IndexerResourceCache<EgressGateway> gateways,
      Function<String, Optional<Node>> nodes, Duration timeout, Duration tick) {
    super(Void.class, "heartbeats");
    this.leases = leases;
    this.gateways = gateways;
    this.nodes = nodes;
    this.liveness = new AgentLiveness(timeout);
    this.tick = tick;
  }

  /** Nodes whose agent's Lease renewal this operator saw within the timeout, now. */
  Set<String> liveAgents() {
    var agentLeases = leases.list(l -> l.getMetadata().getLabels() != null
        && l.getMetadata().getLabels().containsKey(NodeReadiness.NODE_LABEL)).toList();
    return liveness.observe(agentLeases, System.nanoTime(), Instant.now());
  }

  /** When this monitor saw the node's agent die, or null while it lives (or was never seen alive). */
  Instant deadSince(String node) {
    return deadSince.get(node);
  }

  @Override
  public Set<Void> getSecondaryResources(EgressGateway primary) {
    return Set.of();
  }

  @Override
  public void start() {
    super.start();
    timer = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "natgate-heartbeats");
      t.setDaemon(true);
      return t;
    });
    timer.scheduleWithFixedDelay(this::check, 0, tick.toMillis(), TimeUnit.MILLISECONDS);
  }

  private void check() {
    try {
      checkOnce();
    } catch (RuntimeException e) {
      // An exception would cancel the schedule: no failover would ever be detected again.
      LOG.errorf(e, "checking the agents' Leases failed");
    }
  }

  private void checkOnce() {
    Set<String> now = liveAgents();
    if (!now.equals(live)) {
      Set<String> changed = new TreeSet<>(now);
      changed.addAll(live);
      changed.removeIf(n -> now.contains(n) && live.contains(n));
      Instant seen = Instant.now();
      live.stream().filter(n -> !now.contains(n)).forEach(n -> deadSince.put(n, seen));
      now.forEach(deadSince::remove);
      live = now;
      List<Optional<Node>> changedNodes = changed.stream().map(nodes).toList();
      gateways.list().filter(g -> changedNodes.stream().anyMatch(n -> n.isEmpty() || g.getSpec() == null
              || LabelSelectors.matches(g.getSpec().nodeSelector, n.get().getMetadata().getLabels())))
          .forEach(g -> getEventHandler().handleEvent(new Event(ResourceID.fromResource(g))));
    }
  }

  @Override
  public void stop() {
    if (timer != null) {
      timer.shutdownNow();
    }
    super.stop();
  }
}
