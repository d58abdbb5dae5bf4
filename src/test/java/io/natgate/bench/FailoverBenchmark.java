package io.natgate.bench;

import static org.awaitility.Awaitility.await;

import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.e2e.EndToEnd;
import io.natgate.lab.CniChain;
import io.natgate.lab.LabNode;
import io.natgate.lab.LabPod;
import io.natgate.lab.NetworkLab;
import io.natgate.lab.Prober;
import io.natgate.testing.ControlPlane;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.Callable;

/**
 * `make bench-failover`: the end-to-end set-up (operator and agents as processes, network lab), then N times each:
 * the active gateway's agent SIGKILLed (failover time, packets seen with another source), and a new selected pod
 * (its IP written into the API to its first connection with the egress IP, and when each node's state listed it and
 * its agent applied that), its label changed twice (selected -> unselected -> selected: the time to the first
 * connection with the new source, and connections with another source counted), and, with natgate-cni, a pod
 * started through the CNI chain on the gateway node and on a director (ADD returned to its first connection answered
 * with the egress IP, probing every 10 ms). Prints p50/p95/max; asserts nothing on time.
 */
public final class FailoverBenchmark {
  static final String EGRESS_IP = "198.18.0.100";
  /** A pod labelled {@code OPT_OUT=off} is not selected. */
  static final String OPT_OUT = "natgate.io/bench-egress";
  static final java.util.concurrent.atomic.AtomicInteger FAILED_ADDS = new java.util.concurrent.atomic.AtomicInteger();

  private FailoverBenchmark() {
  }

  public static void main(String[] args) {
    try {
      run();
    } catch (Throwable t) {
      t.printStackTrace(); // exec:java would wait for the clients' threads before printing it
      System.exit(1);
    }
    System.exit(0); // exec:java would otherwise wait for the clients' lingering threads
  }

  static void run() throws Exception {
    int rounds = Integer.getInteger("rounds", 10);
    // -Dbench.api-only=true: only the API path's rounds (a new pod, label changes), for a quicker comparison.
    boolean failovers = !Boolean.getBoolean("bench.api-only");
    // -Dbench.failover-only=true: only the failover rounds (agent SIGKILL), for a quicker comparison.
    boolean apiRounds = !Boolean.getBoolean("bench.failover-only");
    String unavailable = NetworkLab.unavailableReason();
    if (unavailable != null) {
      System.err.println("bench-failover: " + unavailable);
      System.exit(2);
    }
    List<Long> failover = new ArrayList<>();
    List<Long> leaked = new ArrayList<>();
    List<Long> takeover = new ArrayList<>();
    List<Long> failedProbes = new ArrayList<>();
    List<Long> outage = new ArrayList<>();
    List<Long> podToSnat = new ArrayList<>();
    List<Long> podToSnatAccepted = new ArrayList<>(); // the same at the external host (see NetworkLab.firstAccepted)
    List<Long> cniGateway = new ArrayList<>();
    List<Long> cniDirector = new ArrayList<>();
    List<Long> cniUnheard = new ArrayList<>();
    List<Long> stateListed = new ArrayList<>();
    List<Long> stateApplied = new ArrayList<>();
    LabelTimes labels = new LabelTimes(new ArrayList<>(), new ArrayList<>(), new ArrayList<>(), new ArrayList<>());
    List<Long> unselected = labels.unselected();
    List<Long> reselected = labels.reselected();
    long[] labelLeaks = new long[3]; // see labelRound
    int[] firstAttempt = new int[2]; // director pods whose first connection attempt was answered: told, not heard
    Map<String, Long> cniSources = new java.util.TreeMap<>();
    try (NetworkLab lab = NetworkLab.withNodes(3).podsPerNode(2); ControlPlane cp = new ControlPlane()) {
      lab.start();
      String noCni = CniChain.unavailableReason();
      if (noCni != null) {
        System.out.println("CNI rounds: " + noCni);
      }
      Path cniDir = Files.createTempDirectory("natgate-bench-cni");
      try (EndToEnd e2e = new EndToEnd(lab, cp).withCni().start()) {
        Map<LabNode, CniChain> chains = new java.util.HashMap<>();
        lab.nodes().forEach(n -> chains.put(n, new CniChain(lab, n, cniDir, e2e.cniSocket(n))));
        e2e.cluster().namespace("payments", Map.of("team", "payments"));
        LabPod probe = lab.pod(3, 1);
        e2e.cluster().runningPod("payments", probe.name(), "node-3", probe.ip(), Map.of());
        try (InputStream sample = Files.newInputStream(ControlPlane.repo().resolve("config/samples/egressgateway.yaml"))) {
          // The sample, with pods that opt out by a label (the label rounds).
          EgressGateway g = cp.admin().resources(EgressGateway.class).load(sample).item();
          g.getSpec().sources.podSelector = new io.fabric8.kubernetes.api.model.LabelSelectorBuilder()
              .addNewMatchExpression().withKey(OPT_OUT).withOperator("NotIn").withValues("off").endMatchExpression()
              .build();
          cp.admin().resource(g).create();
        }
        waitFor(() -> lab.seenSource(probe).equals(Optional.of(EGRESS_IP)), Duration.ofSeconds(120));

        for (int i = 0; i < rounds; i++) {
          if (failovers) {
            // The data plane can be in place before the operator's status write that names the holder.
            LabNode holder = await().atMost(Duration.ofSeconds(30)).until(() -> holder(cp, lab), Objects::nonNull);
            Prober prober = lab.startProbing(probe, Duration.ofMillis(10));
            Thread.sleep(300);
            Instant killed = Instant.now();
            e2e.killAgent(holder);
            // The standby's kernel holding the address, sampled (all nodes read by one process, a few ms each).
            long takenAt = -1;
            while (takenAt < 0 && Duration.between(killed, Instant.now()).toSeconds() < 30) {
              if (lab.holders(EGRESS_IP).stream().anyMatch(n -> !n.equals(holder.name()))) {
                takenAt = Duration.between(killed, Instant.now()).toMillis();
              }
            }
            takeover.add(takenAt);
            waitFor(() -> !holder.equals(holder(cp, lab)), Duration.ofSeconds(30));
            waitFor(() -> lab.seenSource(probe).equals(Optional.of(EGRESS_IP)), Duration.ofSeconds(30));
            Thread.sleep(300);
            var probes = prober.stop();
            failover.add(Prober.recovery(probes, killed, EGRESS_IP).map(Duration::toMillis).orElse(0L));
            leaked.add(Prober.seenWithOtherSource(probes, EGRESS_IP));
            failedProbes.add((long) Prober.failedSince(probes, killed).size());
            outage.add(Prober.longestOutage(probes, java.util.Set.of(EGRESS_IP)));
            e2e.startAgent(holder);
            waitFor(() -> !lab.holds(holder, EGRESS_IP), Duration.ofSeconds(60));
            // As the DaemonSet would have it by the next failure: the restarted agent applied its state and warmed up.
            waitFor(() -> applied(cp, holder), Duration.ofSeconds(60));
            Thread.sleep(Long.getLong("settle", 5000));
            System.out.printf("failover %d: %d ms, standby's kernel has the address after %d ms, outage %d ms, %d "
                + "connections seen with another source (killed %s; %s)%n", i + 1, failover.get(i), takeover.get(i),
                outage.get(i), leaked.get(i), killed, unanswered(probes, killed));
          } else {
            Thread.sleep(Long.getLong("settle", 5000));
          }
          if (!apiRounds) {
            continue;
          }

          LabPod late = lab.pod(2, 2);
          String holderName = Objects.requireNonNull(holder(cp, lab)).name();
          // Scheduled first, its IP written a moment later, as a kubelet does once the sandbox is up: the clock
          // starts at that write (the API change), and the operator's and agents' work on the creation is over.
          e2e.cluster().scheduledPod("payments", "late", "node-2", Map.of());
          Thread.sleep(500);
          Prober joining = lab.startProbing(late, Duration.ofMillis(10));
          try (NodeStateClock clock = new NodeStateClock(cp.admin(), late.ip())) {
            Instant created = Instant.now();
            e2e.cluster().running("payments", "late", late.ip());
            waitFor(() -> lab.seenSource(late).equals(Optional.of(EGRESS_IP)), Duration.ofSeconds(30));
            podToSnat.add(Prober.firstAnswer(joining.stop(), created, EGRESS_IP)
                .map(answered -> Duration.between(created, answered).toMillis()).orElse(-1L));
            podToSnatAccepted.add(lab.firstAccepted(late, EGRESS_IP, created)
                .map(accepted -> Duration.between(created, accepted).toMillis()).orElse(-1L));
            // Where the time goes: the operator (node states written), then the agents (applied and reported).
            waitFor(() -> clock.appliedAfter(holderName, created) >= 0 && clock.appliedAfter("node-2", created) >= 0,
                Duration.ofSeconds(30));
            long listedAt = Math.max(clock.listedAfter(holderName, created), clock.listedAfter("node-2", created));
            stateListed.add(listedAt);
            stateApplied.add(Math.max(clock.appliedAfter(holderName, created), clock.appliedAfter("node-2", created)));
            System.out.printf("new pod %d (IP written at %s): %d ms, accepted after %d ms (gateway %s; node states "
                + "list it after %d ms on the gateway, %d ms on node-2; applied after %d / %d ms)%n", i + 1, created,
                podToSnat.get(i), podToSnatAccepted.get(i), holderName,
                clock.listedAfter(holderName, created), clock.listedAfter("node-2", created),
                clock.appliedAfter(holderName, created), clock.appliedAfter("node-2", created));
          }
          labelRound(e2e, lab, late, "late", i, labels, labelLeaks);
          if (noCni == null && failovers) {
            LabNode gatewayNode = await().atMost(Duration.ofSeconds(30)).until(() -> holder(cp, lab), Objects::nonNull);
            LabNode director = lab.nodes().stream().filter(n -> n != gatewayNode).findFirst().orElseThrow();
            cniGateway.add(cniPodStart(cp, lab, chains.get(gatewayNode), gatewayNode, "cni-g" + i, cniSources).ms());
            CniStart told = cniPodStart(cp, lab, chains.get(director), director, "cni-d" + i, cniSources);
            // Side by side, the behaviour before natgate-cni told the gateway: its port dropped at the gateway node,
            // the director's ADD waits out its bound and returns (the pod is dropped there until the operator lists it).
            String drop = "INPUT -p udp --dport " + io.natgate.Defaults.CNI_SOURCE_PORT + " -j DROP";
            lab.exec(gatewayNode.ns(), ("iptables -I " + drop).split(" "));
            CniStart unheard;
            try {
              unheard = cniPodStart(cp, lab, chains.get(director), director, "cni-u" + i, cniSources);
            } finally {
              lab.exec(gatewayNode.ns(), ("iptables -D " + drop).split(" "));
            }
            cniDirector.add(told.ms());
            cniUnheard.add(unheard.ms());
            firstAttempt[0] += told.firstAttemptAnswered() ? 1 : 0;
            firstAttempt[1] += unheard.firstAttemptAnswered() ? 1 : 0;
            System.out.printf("CNI pod %d: %d ms on the gateway node, %d ms on a director, %d ms on a director whose "
                + "gateway did not hear it%n", i + 1, cniGateway.get(i), told.ms(), unheard.ms());
          }
          e2e.cluster().deletePod("payments", "late");
          waitFor(() -> lab.seenSource(late).equals(Optional.of(lab.node(2).ip())), Duration.ofSeconds(30));
        }
        cp.admin().resources(EgressGateway.class).withName("payments").delete();
      }
    }
    System.out.println();
    System.out.println("peers: heartbeat every 50 ms, dead after 250 ms, standby takes over 150 ms later; Lease: renew"
        + " every 200 ms (operator timeout 900 ms, fence after 600 ms in groups too small for a quorum)");
    System.out.println("load average: " + java.nio.file.Files.readString(java.nio.file.Path.of("/proc/loadavg")).trim());
    if (failovers) {
      print("failover (agent SIGKILL -> first echo with the egress IP)", failover, "ms");
      print("  agent SIGKILL -> the standby's kernel has the egress IP (sampled)", takeover, "ms");
      print("  outage: longest from a failed probe's start to an answer", outage, "ms");
      print("  failed probes (one TCP connection each, every 10 ms)", failedProbes, "");
      print("connections seen with another source during a failover", leaked, "");
    }
    if (!apiRounds) {
      return;
    }
    print("pod IP in the API -> first connection with the egress IP", podToSnat, "ms");
    print("  the same, accepted at the external host (no probe start/exit)", podToSnatAccepted, "ms");
    print("  the operator: pod IP in the API -> its node states list it", stateListed, "ms");
    print("  the agents: pod IP in the API -> they report those states applied", stateApplied, "ms");
    print("label change: selected -> unselected, first answer with the node's IP", unselected, "ms");
    print("label change: unselected -> selected, first answer with the egress IP", reselected, "ms");
    print("  selected -> unselected, accepted at the external host", labels.unselectedAccepted(), "ms");
    print("  unselected -> selected, accepted at the external host", labels.reselectedAccepted(), "ms");
    System.out.printf("label changes: after the first answer with the right source, %d probes seen with the egress IP "
        + "once unselected and %d with another source once selected again; %d probes answered with the node's IP "
        + "between a re-selection and its first answer with the egress IP%n", labelLeaks[0], labelLeaks[1],
        labelLeaks[2]);
    if (!cniGateway.isEmpty()) {
      print("natgate-cni: ADD returned -> first answer with the egress IP, gateway node", cniGateway, "ms");
      print("natgate-cni: ADD returned -> first answer with the egress IP, director", cniDirector, "ms");
      print("natgate-cni: the same, director whose gateway does not hear it", cniUnheard, "ms");
      System.out.printf("natgate-cni director pods whose first connection attempt was answered: %d of %d (gateway "
          + "told at ADD), %d of %d (gateway not hearing the director)%n", firstAttempt[0], cniDirector.size(),
          firstAttempt[1], cniUnheard.size());
      System.out.printf("natgate-cni pods: packets at the external host by source %s (only %s expected); %d ADDs "
          + "failed and were retried%n", cniSources, EGRESS_IP, FAILED_ADDS.get());
    }
  }

  /**
   * The running pod's ({@code name} in the API) label changed twice (selected -> unselected -> selected), probing every 10 ms: the time from each
   * change to the first answer with the address it should now leave with (its node's, then the egress IP). Counts
   * {@code leaks}: [0] probes still seen with the egress IP after the first with the node's IP, [1] probes seen with
   * another source after the first with the egress IP again, [2] probes seen with the node's IP between the
   * re-selection and the first answer with the egress IP (what a Drop gateway would want held).
   */
  static void labelRound(EndToEnd e2e, NetworkLab lab, LabPod pod, String name, int round, LabelTimes times,
      long[] leaks) throws InterruptedException {
    List<Long> unselected = times.unselected();
    List<Long> reselected = times.reselected();
    String nodeIP = lab.node(pod.node()).ip();
    Prober prober = lab.startProbing(pod, Duration.ofMillis(10));
    Thread.sleep(200);
    Instant off = Instant.now();
    e2e.cluster().labelPod("payments", name, OPT_OUT, "off");
    waitFor(() -> lab.seenSource(pod).equals(Optional.of(nodeIP)), Duration.ofSeconds(30));
    Thread.sleep(300);
    Instant on = Instant.now();
    e2e.cluster().labelPod("payments", name, OPT_OUT, null);
    waitFor(() -> lab.seenSource(pod).equals(Optional.of(EGRESS_IP)), Duration.ofSeconds(30));
    Thread.sleep(300);
    List<Prober.Probe> probes = prober.stop();
    Instant offApplied = Prober.firstAnswer(probes, off, nodeIP).orElse(on);
    Instant onApplied = Prober.firstAnswer(probes, on, EGRESS_IP).orElse(Instant.now());
    unselected.add(Duration.between(off, offApplied).toMillis());
    reselected.add(Duration.between(on, onApplied).toMillis());
    times.unselectedAccepted().add(lab.firstAccepted(pod, nodeIP, off).map(t -> Duration.between(off, t).toMillis())
        .orElse(-1L));
    times.reselectedAccepted().add(lab.firstAccepted(pod, EGRESS_IP, on).map(t -> Duration.between(on, t).toMillis())
        .orElse(-1L));
    // A probe counts where it started: once the change was applied, every new connection must have the new source.
    leaks[0] += probes.stream().filter(p -> !p.at().isBefore(offApplied) && p.at().isBefore(on)
        && p.source().equals(Optional.of(EGRESS_IP))).count();
    leaks[1] += probes.stream().filter(p -> !p.at().isBefore(onApplied) && p.source().isPresent()
        && !p.source().equals(Optional.of(EGRESS_IP))).count();
    long window = probes.stream().filter(p -> !p.at().isBefore(on) && p.at().isBefore(onApplied)
        && p.source().equals(Optional.of(nodeIP))).count();
    leaks[2] += window;
    System.out.printf("labels %d: unselected after %d ms, selected again after %d ms (accepted after %d / %d ms; %d "
        + "probes with the node's IP meanwhile)%n", round + 1, unselected.get(round), reselected.get(round),
        times.unselectedAccepted().get(round), times.reselectedAccepted().get(round), window);
  }

  /** The label rounds' times: to the first probe answered with the new source, and as the external host accepted it. */
  record LabelTimes(List<Long> unselected, List<Long> reselected, List<Long> unselectedAccepted,
      List<Long> reselectedAccepted) {
  }

  /**
   * A pod started as a runtime starts it (the CNI chain, then the kubelet's status write), probing from the moment
   * ADD returned: time to its first connection answered with the egress IP; counts its packets by source.
   */
  /** @param firstAttemptAnswered its first probe (one SYN: each probe ends before TCP would send it again) answered */
  record CniStart(long ms, boolean firstAttemptAnswered) {
  }

  static CniStart cniPodStart(ControlPlane cp, NetworkLab lab, CniChain chain, LabNode node, String name,
      Map<String, Long> sources) throws Exception {
    var admin = cp.admin();
    admin.pods().inNamespace("payments").resource(new io.fabric8.kubernetes.api.model.PodBuilder().withNewMetadata()
        .withName(name).withNamespace("payments").endMetadata().withNewSpec().withNodeName(node.name())
        .addNewContainer().withName("app").withImage("example.invalid/app:1").endContainer().endSpec().build()).create();
    String sandbox = lab.newNamespace(name.replace("cni-", "b"));
    CniChain.Outcome added = chain.add(sandbox, "payments", name);
    for (int attempt = 2; added.exit() != 0; attempt++) {
      // As a kubelet does: the runtime's DEL, then ADD again.
      System.out.printf("ADD of %s failed (attempt %d): %s%n", name, attempt - 1, added.out().strip());
      FAILED_ADDS.incrementAndGet();
      chain.del(sandbox, "payments", name);
      if (attempt > 5) {
        throw new IllegalStateException("ADD of " + name + " failed 5 times");
      }
      added = chain.add(sandbox, "payments", name);
    }
    Instant start = Instant.now();
    int port = lab.pod(1, 2).probePort(); // a port no other probe of this benchmark uses
    Map<String, Long> before = lab.arrivals(port);
    Prober prober = lab.startProbing(new LabPod(name, sandbox, added.podIP(), node.index(), 0, port, ""),
        Duration.ofMillis(10));
    var pod = admin.pods().inNamespace("payments").withName(name).get();
    pod.setStatus(new io.fabric8.kubernetes.api.model.PodStatusBuilder().withPhase("Running")
        .withPodIP(added.podIP()).addNewPodIP(added.podIP()).build());
    admin.pods().inNamespace("payments").resource(pod).updateStatus();
    waitFor(() -> lab.seenSource(sandbox, port).equals(Optional.of(EGRESS_IP)), Duration.ofSeconds(30));
    List<Prober.Probe> probes = prober.stop();
    long ms = Prober.firstAnswer(probes, start, EGRESS_IP).map(t -> Duration.between(start, t).toMillis())
        .orElse(-1L);
    boolean firstAttempt = !probes.isEmpty() && probes.get(0).source().equals(Optional.of(EGRESS_IP));
    lab.arrivals(port).forEach((source, n) -> sources.merge(source, n - before.getOrDefault(source, 0L), Long::sum));
    chain.del(sandbox, "payments", name);
    admin.pods().inNamespace("payments").withName(name).withGracePeriod(0).delete();
    return new CniStart(ms, firstAttempt);
  }

  /** Where a failover's gap lies, for reading it against the agents' logs: its failed probes' first and last start. */
  static String unanswered(List<Prober.Probe> probes, Instant killed) {
    List<Instant> failed = Prober.failedSince(probes, killed).stream().map(Prober.Probe::at).sorted().toList();
    if (failed.isEmpty()) {
      return "no probe failed";
    }
    StringBuilder around = new StringBuilder();
    probes.stream().filter(p -> !p.at().isBefore(failed.get(0).minusMillis(40))
        && p.at().isBefore(failed.get(failed.size() - 1).plusMillis(150)))
        .forEach(p -> around.append(String.format(" %d+%d%s", Duration.between(killed, p.at()).toMillis(),
            p.took().toMillis(), p.source().isEmpty() ? "!" : "")));
    return failed.size() + " probes failed, started " + failed.get(0) + " .. " + failed.get(failed.size() - 1)
        + "; probes (start after the kill + took, ! failed):" + around;
  }

  static void print(String what, List<Long> values, String unit) {
    List<Long> sorted = values.stream().sorted().toList();
    System.out.printf("%-60s n=%d p50=%d%s p95=%d%s max=%d%s%n", what, sorted.size(), percentile(sorted, 50), unit,
        percentile(sorted, 95), unit, sorted.get(sorted.size() - 1), unit);
  }

  static long percentile(List<Long> sorted, int p) {
    return sorted.get(Math.min(sorted.size() - 1, (int) Math.ceil(p / 100.0 * sorted.size()) - 1));
  }

  static boolean applied(ControlPlane cp, LabNode n) {
    return cp.admin().resources(EgressNodeState.class).withField("spec.nodeName", n.name()).list().getItems().stream()
        .allMatch(s -> s.getStatus() != null
            && s.getMetadata().getGeneration().equals(s.getStatus().appliedGeneration));
  }

  static void waitFor(Callable<Boolean> done, Duration max) {
    await().atMost(max).pollInterval(Duration.ofMillis(20)).until(done);
  }

  static LabNode holder(ControlPlane cp, NetworkLab lab) {
    var status = cp.admin().resources(EgressGateway.class).withName("payments").get().getStatus();
    String node = status == null || status.assignments.isEmpty() ? null : status.assignments.get(0).node;
    return lab.nodes().stream().filter(n -> n.name().equals(node)).findFirst().orElse(null);
  }

}
