package io.natgate.cni;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.fabric8.kubernetes.api.model.Namespace;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.fabric8.kubernetes.client.informers.ResourceEventHandler;
import io.fabric8.kubernetes.client.informers.SharedIndexInformer;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.natgate.Defaults;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.dataplane.Kernel;
import io.natgate.plan.PodSelection;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Supplier;
import org.jboss.logging.Logger;

/**
 * The agent's own view of its node's pods, the namespaces and the gateways (informers), plus the addresses the CNI
 * plugin reported before the kubelet writes them into the pods' status. From these it adds the selected local pods
 * to the operator's states ({@link LocalDecisions#merge}), and answers the plugin once the kernel has them. A pod
 * steered to another node's egress IP is answered once that node SNATs it too ({@link SourceExchange}), and this node
 * SNATs the pods other nodes told it of ({@link EarlySources}) until the operator lists them.
 */
public final class LocalPods implements CniEndpoint.Handler, AutoCloseable {
  private static final Logger LOG = Logger.getLogger(LocalPods.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  /** Below the plugin's default timeout (10 s): the plugin hears why rather than a timeout. */
  private static final long ANSWER_WITHIN_SECONDS = 8;

  private final KubernetesClient client;
  private final String node;
  private final List<String> clusterCidrs;
  private final Runnable changed;
  private final Supplier<CompletableFuture<Void>> applyNow;
  private final Path store;
  /** Pods the plugin reported, by namespace/name: their sandbox's address, and the pod as it was then. */
  private final Map<String, Reported> reported = new ConcurrentHashMap<>();
  private SharedIndexInformer<Pod> pods;
  private SharedIndexInformer<Namespace> namespaces;
  private SharedIndexInformer<EgressGateway> gateways;
  private final EarlySources learned = new EarlySources(Defaults.CNI_EARLY_SOURCE_TTL_S * 1000);
  /** The parts as last rendered (with their standby SNATs), and with this class's additions. */
  private volatile Map<String, ? extends NodeGatewayState> rendered = Map.of();
  private volatile Map<String, NodeGatewayState> merged = Map.of();
  /** What this node told gateway nodes of its pods, by namespace/name (their DEL tells them again). */
  private final Map<String, List<EarlySources.Source>> told = new ConcurrentHashMap<>();
  /** The pods this node steers ahead of the operator, told to their gateway node: its answer, by source. */
  private final Map<EarlySources.Source, CompletableFuture<Void>> announced = new ConcurrentHashMap<>();
  private volatile SourceExchange exchange;
  private Counter acked;
  private Counter unacked;

  private record Reported(String containerID, String ip, Pod pod) {
  }

  /** What {@link #store} keeps of a reported pod. */
  record Saved(String namespace, String name, String containerID, String ip) {
  }

  /**
   * @param changed  called when what this adds may have changed (an apply follows)
   * @param applyNow applies the node's state now; completes once the kernel has it
   * @param store    file that keeps the reported addresses across an agent restart (the kubelet may not have
   *                 written them into the pods' status yet, and the kernel has them)
   */
  public LocalPods(KubernetesClient client, String node, List<String> clusterCidrs, Runnable changed,
      Supplier<CompletableFuture<Void>> applyNow, Path store) {
    this.client = client;
    this.node = node;
    this.clusterCidrs = List.copyOf(clusterCidrs);
    this.changed = changed;
    this.applyNow = applyNow;
    this.store = store;
  }

  /** Starts the informers and returns once they have listed (an apply before that would drop early members). */
  public LocalPods start() {
    // spec.nodeName is a selectable field of pods: the API server sends this node's pods only.
    pods = client.pods().inAnyNamespace().withField("spec.nodeName", node).inform(onChange(this::podGone));
    namespaces = client.namespaces().inform(onChange(ns -> { }));
    gateways = client.resources(EgressGateway.class).inform(onChange(g -> { }));
    load();
    return this;
  }

  /**
   * Talks to the other nodes' agents from now on ({@link SourceExchange} on {@code port}, signed with the peer key);
   * a port it cannot bind is logged: then new pods steered from here wait for the operator at their gateway.
   */
  public void listen(byte[] key, int port, Kernel kernel, MeterRegistry metrics) {
    acked = Counter.builder("natgate_agent_cni_gateway_confirms_total").tag("outcome", "acked")
        .description("ADDs of pods steered to another node that waited for that node to SNAT them (timeout: the "
            + "ADD returned without; the gateway drops the pod's packets until the operator lists it)")
        .register(metrics);
    unacked = Counter.builder("natgate_agent_cni_gateway_confirms_total").tag("outcome", "timeout").register(metrics);
    try {
      exchange = new SourceExchange(node, port, key, kernel, metrics, learned, gateway -> rendered.get(gateway),
          applyNow).start();
    } catch (RuntimeException e) {
      LOG.errorf("natgate-cni cannot talk to other nodes on UDP %d (%s): a new pod steered from here waits for the "
          + "operator at its gateway", port, e.getMessage());
    }
  }

  /** The operator's states with this node's selected pods that they do not mention yet, and the learned sources. */
  public Map<String, NodeGatewayState> withLocalPods(Map<String, ? extends NodeGatewayState> states) {
    rendered = states;
    learned.confirmed(states);
    Map<String, NodeGatewayState> m = EarlySources.with(LocalDecisions.merge(node, states, localPods(),
        gateways.getStore().list(), namespaceLabels(), clusterCidrs), learned.live(System.currentTimeMillis()));
    merged = m;
    announce(LocalDecisions.steeredAhead(states, m), LocalDecisions.withdrawn(announced.keySet(), m));
    return m;
  }

  /**
   * Tells the gateway nodes of the pods steered ahead of the operator (new, or selected again by a label), once
   * each while they are: their first packets are then SNATed there rather than dropped until the operator lists them.
   * Those told that are steered nowhere any more ({@link LocalDecisions#withdrawn}) are told gone.
   */
  private void announce(java.util.Set<EarlySources.Source> ahead, java.util.Set<EarlySources.Source> withdrawn) {
    SourceExchange x = exchange;
    if (x == null) {
      return;
    }
    announced.entrySet().removeIf(e -> {
      boolean gone = !ahead.contains(e.getKey()); // listed by the operator, or no longer steered here
      if (gone) {
        e.getValue().cancel(false);
      }
      return gone;
    });
    withdrawn.forEach(s -> x.tell(SourceMessage.Kind.DEL, s.gateway(), s.egressIP(), s.pod())
        .orTimeout(Defaults.CNI_CONFIRM_TIMEOUT_MS, TimeUnit.MILLISECONDS));
    ahead.forEach(s -> announced.computeIfAbsent(s, k -> x.tell(SourceMessage.Kind.ADD, s.gateway(), s.egressIP(),
        s.pod()).orTimeout(Defaults.CNI_CONFIRM_TIMEOUT_MS, TimeUnit.MILLISECONDS)));
  }

  /**
   * Answers the plugin, and logs each ADD and DEL with its outcome and how long the node took: the kubelet's events
   * show a refusal, not when a pod that started was put into the node's sets.
   */
  @Override
  public CniEndpoint.Answer handle(CniEndpoint.Request r) {
    long start = System.nanoTime();
    CniEndpoint.Answer answer = decide(r);
    if (!r.command().equals("CHECK")) {
      LOG.infof("natgate-cni %s %s/%s %s (container %.12s) in %d ms: %s", r.command(), r.namespace(), r.name(),
          r.ip(), r.containerID(), (System.nanoTime() - start) / 1_000_000, answer.error() != null
              ? "refused: " + answer.error() : "gateways " + answer.gateways());
    }
    return answer;
  }

  private CniEndpoint.Answer decide(CniEndpoint.Request r) {
    String key = r.namespace() + "/" + r.name();
    try {
      switch (r.command()) {
        case "ADD" -> {
          if (r.ip() == null) {
            return CniEndpoint.Answer.refused("ADD needs the pod's IPv4 address");
          }
          Pod pod = pods.getStore().getByKey(key);
          if (pod == null) {
            pod = client.pods().inNamespace(r.namespace()).withName(r.name()).get(); // not seen by the informer yet
          }
          if (pod == null) {
            return CniEndpoint.Answer.refused("pod " + key + " not found");
          }
          if (!awaitNamespace(r.namespace())) {
            // Its labels decide the selection: never decide without them (the kubelet retries).
            return CniEndpoint.Answer.refused("namespace " + r.namespace() + " not seen yet");
          }
          reported.put(key, new Reported(r.containerID(), r.ip(), pod));
          save();
        }
        case "DEL" -> {
          reported.computeIfPresent(key, (k, v) -> v.containerID().equals(r.containerID()) ? null : v);
          save();
        }
        default -> { } // CHECK: the same apply, which puts back whatever is missing
      }
      applyNow.get().get(ANSWER_WITHIN_SECONDS, TimeUnit.SECONDS);
    } catch (ExecutionException | TimeoutException e) {
      if (r.command().equals("DEL")) {
        // Forgotten already: the next apply removes the address. A failing DEL would only be retried.
        LOG.warnf("DEL of %s: the address leaves the sets with the next apply (%s)", key, e.getMessage());
        changed.run();
        return new CniEndpoint.Answer(List.of(), null);
      }
      return CniEndpoint.Answer.refused(e instanceof ExecutionException x ? "could not apply: " + x.getCause().getMessage()
          : "not applied within " + ANSWER_WITHIN_SECONDS + " s");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return CniEndpoint.Answer.refused("interrupted");
    } catch (KubernetesClientException e) {
      return CniEndpoint.Answer.refused("reading pod " + key + ": " + e.getMessage());
    }
    if (r.command().equals("DEL")) {
      untell(key);
      return new CniEndpoint.Answer(List.of(), null);
    }
    if (r.command().equals("ADD")) {
      tell(key, r.ip());
    }
    var pod = localPods().stream().filter(p -> p.namespace().equals(r.namespace()) && p.name().equals(r.name()))
        .findFirst();
    return new CniEndpoint.Answer(pod.map(p -> LocalDecisions.selections(p, gateways.getStore().list(),
        namespaceLabels())).orElse(List.of()), null);
  }

  /**
   * Waits (bounded) until the nodes holding the egress IPs the pod is steered to SNAT it (told by the apply that
   * steered it, {@link #announce}): its first packet is then answered, not dropped there until the operator lists
   * it. On timeout the ADD succeeds anyway (counted): the pod is steered, and its gateway drops its packets until the
   * operator's state lists it.
   */
  private void tell(String key, String podIP) {
    if (exchange == null) {
      return;
    }
    List<EarlySources.Source> sources = new ArrayList<>();
    List<CompletableFuture<Void>> acks = new ArrayList<>();
    announced.forEach((s, ack) -> {
      if (s.pod().equals(podIP)) {
        sources.add(s);
        acks.add(ack);
      }
    });
    if (sources.isEmpty()) {
      return;
    }
    told.put(key, sources);
    try {
      CompletableFuture.allOf(acks.toArray(CompletableFuture[]::new))
          .get(Defaults.CNI_CONFIRM_TIMEOUT_MS, TimeUnit.MILLISECONDS);
      acked.increment();
    } catch (TimeoutException | ExecutionException e) {
      unacked.increment();
      LOG.infof("ADD of %s: its gateway did not confirm within %d ms; it SNATs the pod once the operator lists it",
          key, Defaults.CNI_CONFIRM_TIMEOUT_MS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** The pod is gone: its gateway nodes forget it (not waited for: what they learned expires anyway). */
  private void untell(String key) {
    SourceExchange x = exchange;
    List<EarlySources.Source> sources = told.remove(key);
    if (x != null && sources != null) {
      sources.forEach(s -> x.tell(SourceMessage.Kind.DEL, s.gateway(), s.egressIP(), s.pod())
          .orTimeout(Defaults.CNI_CONFIRM_TIMEOUT_MS, TimeUnit.MILLISECONDS));
    }
  }

  /** A namespace created just before its pod may reach this agent's informer a moment after the pod's ADD. */
  private boolean awaitNamespace(String name) throws InterruptedException {
    for (int i = 0; i < 40 && namespaces.getStore().getByKey(name) == null; i++) {
      Thread.sleep(50);
    }
    return namespaces.getStore().getByKey(name) != null;
  }

  /** This node's pods with an address: the one the plugin reported, else the one in their status. */
  List<LocalDecisions.LocalPod> localPods() {
    Map<String, LocalDecisions.LocalPod> byKey = new HashMap<>();
    for (Pod p : pods.getStore().list()) {
      if (PodSelection.hasRoutableIP(p)) {
        byKey.put(key(p), local(p, p.getStatus().getPodIP()));
      }
    }
    reported.forEach((key, r) -> {
      Pod current = Objects.requireNonNullElse(pods.getStore().getByKey(key), r.pod()); // its labels now
      byKey.put(key, local(current, r.ip()));
    });
    return new ArrayList<>(byKey.values());
  }

  private Map<String, Map<String, String>> namespaceLabels() {
    Map<String, Map<String, String>> labels = new HashMap<>();
    namespaces.getStore().list().forEach(ns -> labels.put(ns.getMetadata().getName(),
        Objects.requireNonNullElse(ns.getMetadata().getLabels(), Map.of())));
    return labels;
  }

  private void podGone(Pod p) {
    if (reported.remove(key(p)) != null) {
      save();
    }
    untell(key(p));
  }

  /** Reported pods that still exist (the informers have listed), as a previous run of the agent saved them. */
  private void load() {
    if (!Files.exists(store)) {
      return;
    }
    try {
      for (Saved saved : JSON.readValue(store.toFile(), Saved[].class)) {
        Pod pod = pods.getStore().getByKey(saved.namespace() + "/" + saved.name());
        if (pod != null) {
          reported.put(key(pod), new Reported(saved.containerID(), saved.ip(), pod));
        }
      }
    } catch (IOException e) {
      LOG.warnf("could not read %s: %s", store, e.getMessage());
    }
  }

  private synchronized void save() {
    List<Saved> saved = new ArrayList<>();
    reported.forEach((key, r) -> saved.add(new Saved(r.pod().getMetadata().getNamespace(),
        r.pod().getMetadata().getName(), r.containerID(), r.ip())));
    try {
      Path tmp = store.resolveSibling(store.getFileName() + ".tmp");
      JSON.writeValue(tmp.toFile(), saved);
      Files.move(tmp, store, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    } catch (IOException e) {
      LOG.warnf("could not write %s: %s", store, e.getMessage());
    }
  }

  private static LocalDecisions.LocalPod local(Pod p, String ip) {
    return new LocalDecisions.LocalPod(p.getMetadata().getNamespace(), p.getMetadata().getName(), ip,
        Objects.requireNonNullElse(p.getMetadata().getLabels(), Map.of()));
  }

  private static String key(Pod p) {
    return p.getMetadata().getNamespace() + "/" + p.getMetadata().getName();
  }

  /** Any change may change the merge: ask for an apply (coalesced by the agent). */
  private <T extends io.fabric8.kubernetes.api.model.HasMetadata> ResourceEventHandler<T> onChange(
      java.util.function.Consumer<T> onDelete) {
    return new ResourceEventHandler<>() {
      @Override
      public void onAdd(T obj) {
        changed.run();
      }

      @Override
      public void onUpdate(T oldObj, T newObj) {
        LOG.debugf("%s %s changed", newObj.getKind(), newObj.getMetadata().getName());
        changed.run();
      }

      @Override
      public void onDelete(T obj, boolean deletedFinalStateUnknown) {
        onDelete.accept(obj);
        changed.run();
      }
    };
  }

  @Override
  public void close() {
    if (exchange != null) {
      exchange.close();
    }
    for (SharedIndexInformer<?> i : new SharedIndexInformer<?>[] {pods, namespaces, gateways}) {
      if (i != null) {
        i.close();
      }
    }
    LOG.debug("local pod informers closed");
  }
}
