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
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import io.natgate.api.v1alpha1.EgressNodeStateStatus;
import io.natgate.connlog.ConnectionLog;
import io.natgate.dataplane.DataplaneSettings;
import io.natgate.dataplane.Kernel;
import io.natgate.dataplane.KernelPlan;
import io.natgate.dataplane.NodeDataplane;
import io.natgate.dataplane.Renderer;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.jboss.logging.Logger;

/**
 * The node agent: watches its node's EgressNodeStates (one per gateway), applies them together to the kernel,
 * reports on each the applied generation (or the error) in its status, renews its Lease, fences itself when it
 * cannot, and repairs drift periodically.
 * All kernel work happens on one thread, so applies never overlap.
 */
public final class Agent implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(Agent.class);
  private static final ObjectMapper JSON = new ObjectMapper();

  /** What the agent needs to know; see {@code natgate.agent.*} and {@code natgate.heartbeat.*}. */
  public record Settings(String nodeName, String nodeIP, String uplink, String leaseNamespace, Duration renewInterval,
      Duration heartbeatTimeout, Duration fenceAfter, Duration repairInterval, int tunnelPort, int markMask,
      int tableBase, int rulePriority) {
  }

  private final KubernetesClient client;
  private final KubernetesClient heartbeatClient;
  private final Settings settings;
  private final Kernel kernel;
  private final MeterRegistry metrics;
  private final ScheduledExecutorService worker =
      Executors.newSingleThreadScheduledExecutor(r -> new Thread(r, "natgate-agent"));
  private final AtomicBoolean applyPending = new AtomicBoolean();
  /** Renews the egress IPs' lifetimes after each heartbeat, off the heartbeat thread and never queued twice. */
  private final ScheduledExecutorService refresher =
      Executors.newSingleThreadScheduledExecutor(r -> new Thread(r, "natgate-address-lifetime"));
  private final AtomicBoolean refreshPending = new AtomicBoolean();
  private final AtomicReference<String> lastError = new AtomicReference<>();
  private NodeDataplane dataplane;
  private Heartbeat heartbeat;
  private volatile SharedIndexInformer<EgressNodeState> informer;
  private volatile boolean synced;
  private Timer applyTimer;
  private Counter applyErrors;
  private ConnectionLog.Settings connectionLogSettings; // null: no connection log
  private ConnectionLog connectionLog;

  /** @param heartbeatClient a client with short timeouts and no retries: a slow renewal must count as a failed one */
  public Agent(KubernetesClient client, KubernetesClient heartbeatClient, Settings settings, Kernel kernel,
      MeterRegistry metrics) {
    this.client = client;
    this.heartbeatClient = heartbeatClient;
    this.settings = settings;
    this.kernel = kernel;
    this.metrics = metrics;
  }

  /** Records the connections this node translates for gateways with the log on (before {@link #start}). */
  public Agent withConnectionLog(ConnectionLog.Settings settings) {
    connectionLogSettings = settings;
    return this;
  }

  /** Starts the heartbeat now, and watching the node state once the first renewal succeeded (in the background). */
  public Agent start() {
    String uplink = settings.uplink() != null ? settings.uplink() : uplinkHolding(settings.nodeIP());
    // Egress IPs outlive a dead agent by at most this (whole seconds: the kernel's granularity).
    int lifetime = (int) Math.max(1, (settings.heartbeatTimeout().toMillis() + 999) / 1000);
    DataplaneSettings dp = new DataplaneSettings(uplink, "natgate0", settings.tunnelPort(), settings.markMask(),
        settings.tableBase(), settings.rulePriority(), lifetime);
    dataplane = new NodeDataplane(kernel, dp);
    if (connectionLogSettings != null) {
      connectionLog = new ConnectionLog(kernel, settings.nodeName(), connectionLogSettings, metrics);
    }
    registerMetrics();
    LOG.infof("natgate agent for node %s: uplink %s, tunnel natgate0 (VXLAN-GPE, UDP %d)", settings.nodeName(),
        uplink, settings.tunnelPort());

    heartbeat = new Heartbeat(heartbeatClient, settings.leaseNamespace(), settings.nodeName(),
        settings.renewInterval(), settings.heartbeatTimeout(), settings.fenceAfter(),
        () -> onWorker(dataplane::fence), () -> onWorker(() -> {
          dataplane.unfence();
          applyLater();
        }), this::refreshLater).start();
    Thread connect = new Thread(this::connect, "natgate-agent-connect");
    connect.setDaemon(true);
    connect.start();
    return this;
  }

  private void connect() {
    try {
      while (!heartbeat.awaitFirstRenewal(Duration.ofSeconds(10))) {
        LOG.warn("no Lease renewal yet: waiting for the API server before taking any egress IP");
      }
      // spec.nodeName is a selectable field: the API server sends this node's states only.
      informer = client.resources(EgressNodeState.class).withField("spec.nodeName", settings.nodeName())
          .inform(handler());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return;
    }
    synced = true;
    applyLater(); // also when there is no state: whatever an earlier run left behind is removed
    long repair = settings.repairInterval().toMillis();
    worker.scheduleWithFixedDelay(this::repair, repair, repair, TimeUnit.MILLISECONDS);
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
    return lastError.get();
  }

  public NodeDataplane dataplane() {
    return dataplane;
  }

  private void applyLater() {
    if (applyPending.compareAndSet(false, true)) {
      worker.execute(this::applyCurrent);
    }
  }

  private void refreshLater() {
    if (refreshPending.compareAndSet(false, true)) {
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

  private void onWorker(Runnable r) {
    worker.execute(() -> {
      try {
        r.run();
      } catch (RuntimeException e) {
        LOG.errorf(e, "kernel update failed");
        lastError.set(e.getMessage());
      }
    });
  }

  private void applyCurrent() {
    applyPending.set(false);
    if (informer == null) {
      return; // events of the initial list, before inform() returned: connect() applies right after
    }
    List<EgressNodeState> states = informer.getStore().list().stream()
        .filter(st -> st.getSpec() != null && settings.nodeName().equals(st.getSpec().nodeName)).toList();
    Map<String, EgressNodeStateSpec> byGateway = new TreeMap<>();
    states.forEach(st -> byGateway.put(st.getSpec().gateway, st.getSpec()));
    Timer.Sample sample = Timer.start(metrics);
    try {
      if (connectionLog != null) {
        connectionLog.update(byGateway); // listening before the connections are marked
      }
      KernelPlan plan = Renderer.render(byGateway, dataplane().settings());
      NodeDataplane.Result result = dataplane.apply(plan);
      long nanos = sample.stop(applyTimer);
      lastError.set(null);
      if (result.changed()) {
        LOG.infof("applied %d gateway(s) in %d ms: %d rules, %d set members, holding %s", byGateway.size(),
            nanos / 1_000_000, plan.ruleCount(), plan.setMembers(), plan.held());
      }
      states.forEach(st -> report(st, null));
    } catch (RuntimeException e) {
      sample.stop(applyTimer);
      applyErrors.increment();
      lastError.set(e.getMessage());
      LOG.errorf("apply failed (retrying in 1 s): %s", e.getMessage());
      states.forEach(st -> report(st, e.getMessage()));
      worker.schedule(this::applyLater, 1, TimeUnit.SECONDS);
    }
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
  }

  /** Writes status only when it differs from what is there (a no-op apply writes nothing). */
  private void report(EgressNodeState state, String error) {
    Long generation = error == null ? state.getMetadata().getGeneration()
        : state.getStatus() == null ? null : state.getStatus().appliedGeneration;
    var status = new EgressNodeStateStatus();
    status.appliedGeneration = generation;
    status.error = error == null ? null : error.length() > 1000 ? error.substring(0, 1000) : error;
    if (status.equals(state.getStatus())) {
      return;
    }
    try {
      Map<String, Object> body = new java.util.HashMap<>();
      body.put("appliedGeneration", status.appliedGeneration);
      body.put("error", status.error); // null removes it
      client.resources(EgressNodeState.class).withName(state.getMetadata().getName()).subresource("status")
          .patch(PatchContext.of(PatchType.JSON_MERGE), JSON.writeValueAsString(Map.of("status", body)));
    } catch (KubernetesClientException | com.fasterxml.jackson.core.JsonProcessingException e) {
      LOG.warnf("could not report status on %s: %s", state.getMetadata().getName(), e.getMessage());
    }
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
    if (heartbeat != null) {
      heartbeat.close();
    }
    if (informer != null) {
      informer.close();
    }
    worker.shutdownNow();
    refresher.shutdownNow();
    if (dataplane != null) {
      dataplane.close();
    }
    if (connectionLog != null) {
      connectionLog.close();
    }
  }
}
