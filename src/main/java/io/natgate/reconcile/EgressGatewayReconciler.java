package io.natgate.reconcile;

import io.fabric8.kubernetes.api.model.LabelSelector;
import io.fabric8.kubernetes.api.model.Namespace;
import io.fabric8.kubernetes.api.model.Node;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.coordination.v1.Lease;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.fabric8.kubernetes.client.dsl.base.PatchContext;
import io.fabric8.kubernetes.client.dsl.base.PatchType;
import io.fabric8.kubernetes.client.informers.cache.ReducedStateItemStore;
import io.javaoperatorsdk.operator.api.config.informer.InformerEventSourceConfiguration;
import io.javaoperatorsdk.operator.api.reconciler.Cleaner;
import io.javaoperatorsdk.operator.api.reconciler.Context;
import io.javaoperatorsdk.operator.api.reconciler.ControllerConfiguration;
import io.javaoperatorsdk.operator.api.reconciler.DeleteControl;
import io.javaoperatorsdk.operator.api.reconciler.ErrorStatusUpdateControl;
import io.javaoperatorsdk.operator.api.reconciler.EventSourceContext;
import io.javaoperatorsdk.operator.api.reconciler.Reconciler;
import io.javaoperatorsdk.operator.api.reconciler.UpdateControl;
import io.javaoperatorsdk.operator.processing.event.ResourceID;
import io.javaoperatorsdk.operator.processing.event.source.EventSource;
import io.javaoperatorsdk.operator.processing.event.source.IndexerResourceCache;
import io.javaoperatorsdk.operator.processing.event.source.informer.InformerEventSource;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Metrics;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.EgressGatewayStatus;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.plan.ClusterSnapshot;
import io.natgate.plan.GatewayPlan;
import io.natgate.plan.GatewayPlanner;
import io.natgate.plan.LabelSelectors;
import io.natgate.plan.NodeLabels;
import io.natgate.plan.NodeReadiness;
import io.natgate.plan.PeerGroups;
import io.natgate.peers.PeerKey;
import io.natgate.plan.StatusCalculator;
import io.natgate.plan.StatusEvents;
import jakarta.inject.Inject;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.jboss.logging.Logger;

/**
 * Observe (informer caches) → decide ({@link GatewayPlanner}, pure) → apply (node labels and node states, only what
 * differs) → report (status, only when it differs; Events on assignment changes and conflicts).
 */
@ControllerConfiguration(name = EgressGatewayReconciler.NAME)
public class EgressGatewayReconciler implements Reconciler<EgressGateway>, Cleaner<EgressGateway> {
  private static final Logger LOG = Logger.getLogger(EgressGatewayReconciler.class);
  public static final String NAME = "egressgateway";
  /** The server-side-apply field manager of every write the operator makes to nodes and node states. */
  static final String FIELD_MANAGER = "natgate-operator";

  private final OperatorSettings settings;
  private InformerEventSource<Node, EgressGateway> nodes;
  private InformerEventSource<Pod, EgressGateway> pods;
  private InformerEventSource<Namespace, EgressGateway> namespaces;
  private InformerEventSource<EgressNodeState, EgressGateway> nodeStates;
  private HeartbeatMonitor heartbeats;
  /**
   * The status this operator last wrote, by gateway uid. Only the operator writes status, so this is the truth
   * while the informer cache may still hold the previous one: planning from it keeps assignments sticky and Events
   * single.
   */
  private final Map<String, EgressGatewayStatus> written = new ConcurrentHashMap<>();
  private volatile boolean peerKeyEnsured;
  /** Node-state writes of one reconcile run side by side, up to 8 at once (threads end after 30 s idle). */
  private final ThreadPoolExecutor stateWrites = new ThreadPoolExecutor(8, 8, 30, TimeUnit.SECONDS,
      new LinkedBlockingQueue<>(), r -> {
        Thread t = new Thread(r, "natgate-node-state-write");
        t.setDaemon(true);
        return t;
      });
  private final OperatorMetrics metrics;

  /** With Micrometer's global registry (tests that run the reconciler in their JVM). */
  public EgressGatewayReconciler(OperatorSettings settings) {
    this(settings, Metrics.globalRegistry);
  }

  @Inject
  public EgressGatewayReconciler(OperatorSettings settings, MeterRegistry registry) {
    this.settings = settings;
    this.metrics = new OperatorMetrics(registry);
    stateWrites.allowCoreThreadTimeOut(true);
  }

  @Override
  public List<EventSource<?, EgressGateway>> prepareEventSources(EventSourceContext<EgressGateway> context) {
    IndexerResourceCache<EgressGateway> gateways = context.getPrimaryCache();
    // Nodes and namespaces are few and change rarely in the fields that matter: any such change replans all.
    nodes = new InformerEventSource<>(InformerEventSourceConfiguration.from(Node.class, EgressGateway.class)
        .withName("nodes")
        .withSecondaryToPrimaryMapper(n -> all(gateways))
        .withOnUpdateFilter((n, old) -> !Objects.equals(nodeFacts(n), nodeFacts(old)))
        .build(), context);
    namespaces = new InformerEventSource<>(InformerEventSourceConfiguration.from(Namespace.class, EgressGateway.class)
        .withName("namespaces")
        .withSecondaryToPrimaryMapper(ns -> all(gateways))
        .withOnUpdateFilter((ns, old) -> !Objects.equals(ns.getMetadata().getLabels(), old.getMetadata().getLabels()))
        .build(), context);
    // A pod matters only to gateways whose namespaceSelector selects its namespace (a pod never changes namespace,
    // so that set is the same before and after any change of the pod; namespace label changes replan all above).
    pods = new InformerEventSource<>(InformerEventSourceConfiguration.from(Pod.class, EgressGateway.class)
        .withName("pods")
        .withWatchAllNamespaces()
        .withSecondaryToPrimaryMapper(p -> selectingNamespace(gateways, p.getMetadata().getNamespace()))
        .withOnUpdateFilter((p, old) -> !Objects.equals(podFacts(p), podFacts(old)))
        // Pods are the bulk of the cache: keep only what planning reads (podFacts and hostNetwork).
        .withItemStore(new ReducedStateItemStore<>(ReducedStateItemStore.NAME_KEY_STATE, Pod.class,
            context.getClient().getKubernetesSerialization(), "metadata.labels", "spec.nodeName", "spec.hostNetwork",
            "status.podIP", "status.phase"))
        .build(), context);
    nodeStates = new InformerEventSource<>(InformerEventSourceConfiguration.from(EgressNodeState.class, EgressGateway.class)
        .withName("nodestates")
        .withSecondaryToPrimaryMapper(s -> s.getSpec() == null || s.getSpec().gateway == null ? Set.of()
            : Set.of(new ResourceID(s.getSpec().gateway)))
        .build(), context);
    // Another gateway's change can free or take an egress IP this one wants: replan those that share one.
    var peers = new InformerEventSource<>(InformerEventSourceConfiguration.from(EgressGateway.class, EgressGateway.class)
        .withName("peers")
        .withSecondaryToPrimaryMapper(g -> gateways.list()
            .filter(o -> !o.getMetadata().getName().equals(g.getMetadata().getName()))
            .filter(o -> o.getSpec() != null && g.getSpec() != null
                && o.getSpec().egressIPs().stream().anyMatch(g.getSpec().egressIPs()::contains))
            .map(ResourceID::fromResource).collect(Collectors.toSet()))
        .withOnUpdateFilter((g, old) -> !Objects.equals(g.getSpec(), old.getSpec())
            || !Objects.equals(g.getMetadata().getDeletionTimestamp(), old.getMetadata().getDeletionTimestamp()))
        .build(), context);
    // Agents' Leases: renewals only fill the cache; the monitor triggers gateways when an agent dies or comes back.
    var leases = new InformerEventSource<>(InformerEventSourceConfiguration.from(Lease.class, EgressGateway.class)
        .withName("leases")
        .withNamespaces(Set.of(settings.heartbeatNamespace()))
        .withLabelSelector(NodeReadiness.NODE_LABEL)
        .withSecondaryToPrimaryMapper(l -> Set.of())
        .build(), context);
    heartbeats = new HeartbeatMonitor(leases, gateways, name -> nodes.get(new ResourceID(name)),
        settings.heartbeatTimeout(), Duration.ofMillis(25));
    return List.of(nodes, namespaces, pods, nodeStates, peers, leases, heartbeats);
  }

  @Override
  public UpdateControl<EgressGateway> reconcile(EgressGateway gateway, Context<EgressGateway> context) {
    long started = System.nanoTime();
    Instant now = Instant.now().truncatedTo(ChronoUnit.SECONDS);
    String uid = gateway.getMetadata().getUid();
    if (context.getRetryInfo().isPresent()) {
      written.remove(uid); // the last attempt failed, maybe while writing that status: trust the API again
    }
    if (written.containsKey(uid)) {
      gateway.setStatus(written.get(uid));
    }
    ClusterSnapshot cluster = snapshot(context, gateway);
    String name = gateway.getMetadata().getName();
    Map<String, EgressNodeState> states = nodeStatesOf(name);
    GatewayPlan plan = GatewayPlanner.plan(gateway, cluster, PeerGroups.takeovers(states), states, now);
    var client = context.getClient();
    if (!peerKeyEnsured) {
      // Before any state names a peer group; and whatever the groups: agents also sign natgate-cni's and the DNS
      // path's messages with it (without it those never start).
      PeerKey.ensure(client, settings.heartbeatNamespace());
      peerKeyEnsured = true;
    }

    var labeler = new NodeLabeler(client);
    Set<String> labelled = new HashSet<>(plan.candidates());
    cluster.nodes().values().stream().filter(n -> name.equals(NodeLabels.currentGateway(n)))
        .forEach(n -> labelled.add(n.getMetadata().getName()));
    for (String node : labelled) {
      Node n = cluster.nodes().get(node);
      labeler.ensure(n, NodeLabels.desiredGateway(n, cluster.liveGateways()));
    }

    long planned = System.nanoTime();
    int statesChanged = new NodeStateWriter(client).ensureAll(gateway, plan.nodeStates(), states, stateWrites);
    long statesWritten = System.nanoTime();

    EgressGatewayStatus status = StatusCalculator.compute(gateway, plan, states, now);
    metrics.observed(gateway, plan, gateway.getStatus(), status, states, heartbeats::deadSince, Instant.now());
    if (status.equals(gateway.getStatus())) {
      logTimes(name, started, planned, statesChanged, statesWritten, statesWritten, statesWritten);
      return UpdateControl.noUpdate();
    }
    writeStatus(client, gateway, status);
    long statusWritten = System.nanoTime();
    // Only what was written is trusted, and only a written change is announced (a failed write retries: no repeats).
    written.put(uid, status);
    var events = new EventRecorder(client, settings.eventNamespace());
    for (var e : StatusEvents.between(gateway.getStatus(), status, plan)) {
      if (e.warning()) {
        events.warning(gateway, e.reason(), e.message());
      } else {
        events.normal(gateway, e.reason(), e.message());
      }
    }
    logTimes(name, started, planned, statesChanged, statesWritten, statusWritten, System.nanoTime());
    return UpdateControl.noUpdate();
  }

  /** Where a reconcile's time went (debug): the API path's latency is mostly here and in the agents. */
  private static void logTimes(String gateway, long started, long planned, int states, long statesWritten,
      long statusWritten, long done) {
    if (LOG.isDebugEnabled()) {
      LOG.debugf("reconciled %s in %d ms: observed and planned %d ms, %d node state(s) written %d ms, status %d ms, "
          + "Events %d ms", gateway, (done - started) / 1_000_000, (planned - started) / 1_000_000, states,
          (statesWritten - planned) / 1_000_000, (statusWritten - statesWritten) / 1_000_000,
          (done - statusWritten) / 1_000_000);
    }
  }

  /**
   * A reconcile that threw (after the SDK's retries too): {@code Ready=False} with the reason, e.g. a write the API
   * server refused for a missing RBAC verb (403) or an invalid object (422). The SDK keeps retrying as configured.
   */
  @Override
  public ErrorStatusUpdateControl<EgressGateway> updateErrorStatus(EgressGateway gateway, Context<EgressGateway> context,
      Exception e) {
    String uid = gateway.getMetadata().getUid();
    written.remove(uid);
    String reason = e instanceof KubernetesClientException k && k.getCode() == 403 ? "Forbidden"
        : e instanceof KubernetesClientException k && k.getCode() == 422 ? "Invalid" : "ReconcileFailed";
    String message = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
    EgressGatewayStatus status = StatusCalculator.failed(gateway.getStatus(),
        Objects.requireNonNullElse(gateway.getMetadata().getGeneration(), 0L), reason,
        message.length() > 1000 ? message.substring(0, 1000) : message, Instant.now().truncatedTo(ChronoUnit.SECONDS));
    if (!status.equals(gateway.getStatus())) {
      try {
        writeStatus(context.getClient(), gateway, status);
      } catch (KubernetesClientException writeFailed) {
        LOG.warnf("gateway %s: could not report the failure in its status either: %s",
            gateway.getMetadata().getName(), writeFailed.getMessage());
      }
    }
    return ErrorStatusUpdateControl.noStatusUpdate();
  }

  /**
   * The whole status as a JSON merge patch, without an optimistic lock: it is recomputed on every event, and each
   * of its fields is a list or a number, so each is replaced whole.
   */
  private static void writeStatus(KubernetesClient client, EgressGateway gateway, EgressGatewayStatus status) {
    client.resources(EgressGateway.class).withName(gateway.getMetadata().getName()).subresource("status")
        .patch(PatchContext.of(PatchType.JSON_MERGE),
            client.getKubernetesSerialization().asJson(Map.of("status", status)));
  }

  /** Deletes this gateway's node states and hands its node labels to the next gateway, if any. */
  @Override
  public DeleteControl cleanup(EgressGateway gateway, Context<EgressGateway> context) {
    String name = gateway.getMetadata().getName();
    ClusterSnapshot cluster = snapshot(context, gateway);
    var writer = new NodeStateWriter(context.getClient());
    nodeStatesOf(name).values().forEach(writer::delete);
    var labeler = new NodeLabeler(context.getClient());
    List<EgressGateway> others = cluster.liveGateways().stream()
        .filter(g -> !g.getMetadata().getName().equals(name)).toList();
    cluster.nodes().values().stream().filter(n -> name.equals(NodeLabels.currentGateway(n)))
        .forEach(n -> labeler.ensure(n, NodeLabels.desiredGateway(n, others)));
    written.remove(gateway.getMetadata().getUid());
    metrics.removed(name);
    return DeleteControl.defaultDelete();
  }

  /** What {@code gateway} is planned from; of the pods, only those of the namespaces its sources select. */
  private ClusterSnapshot snapshot(Context<EgressGateway> context, EgressGateway gateway) {
    Map<String, Node> nodesByName = new HashMap<>();
    nodes.list(n -> true).forEach(n -> nodesByName.put(n.getMetadata().getName(), n));
    Map<String, Map<String, String>> namespaceLabels = new HashMap<>();
    namespaces.list(n -> true).forEach(n -> namespaceLabels.put(n.getMetadata().getName(), labels(n)));
    var selector = namespaceSelector(gateway);
    List<Pod> candidatePods = new ArrayList<>();
    namespaceLabels.forEach((ns, labels) -> {
      if (LabelSelectors.matches(selector, labels)) {
        pods.list(ns, p -> true).forEach(candidatePods::add);
      }
    });
    return new ClusterSnapshot(nodesByName, candidatePods, namespaceLabels,
        context.getPrimaryCache().list().toList(), settings.clusterCidrs(), heartbeats.liveAgents(),
        settings.peerGroups());
  }

  /** Gateways whose sources' namespaceSelector selects the namespace (none while the namespace is not known yet). */
  private Set<ResourceID> selectingNamespace(IndexerResourceCache<EgressGateway> gateways, String namespace) {
    return namespaces.get(new ResourceID(namespace)).map(ns -> gateways.list()
        .filter(g -> LabelSelectors.matches(namespaceSelector(g), labels(ns)))
        .map(ResourceID::fromResource).collect(Collectors.toSet())).orElse(Set.of());
  }

  private static LabelSelector namespaceSelector(EgressGateway g) {
    return g.getSpec() == null || g.getSpec().sources == null ? null : g.getSpec().sources.namespaceSelector;
  }

  private static Map<String, String> labels(Namespace ns) {
    return ns.getMetadata().getLabels() == null ? Map.of() : ns.getMetadata().getLabels();
  }

  /** The gateway's node states, by node name. */
  private Map<String, EgressNodeState> nodeStatesOf(String gateway) {
    Map<String, EgressNodeState> m = new HashMap<>();
    nodeStates.list(s -> s.getSpec() != null && gateway.equals(s.getSpec().gateway))
        .forEach(s -> m.put(s.getSpec().nodeName, s));
    return m;
  }

  private static Set<ResourceID> all(IndexerResourceCache<EgressGateway> gateways) {
    return gateways.list().map(ResourceID::fromResource).collect(Collectors.toSet());
  }

  /** The parts of a Node the plan reads; kubelet heartbeats that change nothing else are ignored. */
  static List<Object> nodeFacts(Node n) {
    return List.of(Objects.requireNonNullElse(n.getMetadata().getLabels(), Map.of()), NodeReadiness.kubeletReady(n),
        Objects.requireNonNullElse(NodeReadiness.internalIP(n), ""),
        GatewayPlanner.cordoned(n),
        n.getSpec() == null || n.getSpec().getPodCIDRs() == null ? List.of() : n.getSpec().getPodCIDRs());
  }

  /** The parts of a Pod the plan reads; container status churn is ignored. */
  static List<Object> podFacts(Pod p) {
    var s = p.getStatus();
    return java.util.Arrays.asList(p.getMetadata().getLabels(), p.getSpec() == null ? null : p.getSpec().getNodeName(),
        s == null ? null : s.getPodIP(), s == null ? null : s.getPhase());
  }
}
