package io.natgate.dataplane;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.natgate.api.v1alpha1.FailurePolicy;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.api.v1alpha1.NodeGatewayState.Snat;
import io.natgate.api.v1alpha1.NodeGatewayState.Steer;
import io.natgate.lab.KernelState;
import io.natgate.lab.LabNode;
import io.natgate.lab.LabPod;
import io.natgate.lab.NetworkLab;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The data plane with real packets: node namespaces on a bridge, pods behind them, an external echo server that
 * reports the source it saw. Each node's {@link NodeDataplane} runs in this JVM with its commands executed in the
 * node's namespace ({@code ip netns exec}); the node states are written here as the operator would write them.
 * Needs root; skipped with the reason otherwise.
 */
class DataplaneLabIT {
  static final String EGRESS_IP = "198.18.0.100";
  static final String OTHER_EGRESS_IP = "198.18.0.101";
  static final Duration SOON = Duration.ofSeconds(5);

  @RegisterExtension
  static final NetworkLab lab = NetworkLab.withNodes(3).podsPerNode(2);

  private final Map<Integer, NodeDataplane> agents = new HashMap<>();
  private Map<String, KernelState> baseline;

  /** Each test counts the packets of its own connections only. */
  @BeforeEach
  void baseline() {
    baseline = lab.kernelStates();
    lab.resetArrivals();
  }

  /**
   * The lab is left as it was found: uninstall as the agent does (nothing, not even the base), compare. And whatever
   * a test did to its gateways, no packet left with a pod's own address (to any port of the external host).
   */
  @AfterEach
  void removeEverything() {
    Map<String, Long> leaked = lab.arrivalsFrom(NetworkLab.POD_CIDR); // a previous test's uninstall's included
    for (LabNode n : lab.nodes()) {
      agent(n.index()).removeAll();
      agent(n.index()).close();
    }
    assertThat(lab.kernelStates()).isEqualTo(baseline);
    assertThat(leaked).as("packets with a pod's own address, by source").isEmpty();
  }

  NodeDataplane agent(int node) {
    return agents.computeIfAbsent(node, i -> new NodeDataplane(new Kernel(lab.nsCommandPrefix(lab.node(i).ns())),
        DataplaneSettings.defaults(lab.node(i).uplink())));
  }

  void apply(int node, Map<String, NodeGatewayState> spec) {
    agent(node).apply(Renderer.render(spec, agent(node).settings()));
  }

  /** payments: EGRESS_IP held by node 1, selecting pod 1 of nodes 1 and 2; node 2 steers its pod to node 1. */
  void payments(FailurePolicy policy, List<String> cidrs, List<String> excluded) {
    LabPod onGateway = lab.pod(1, 1);
    LabPod onDirector = lab.pod(2, 1);
    apply(1, spec("payments", gateway(policy, cidrs, excluded,
        List.of(new Snat(EGRESS_IP, true, List.of(onGateway.ip(), onDirector.ip()))), List.of())));
    apply(2, spec("payments", gateway(policy, cidrs, excluded, List.of(),
        List.of(new Steer(EGRESS_IP, lab.node(1).name(), lab.node(1).ip(), List.of(onDirector.ip()))))));
  }

  void payments() {
    payments(FailurePolicy.Drop, List.of("0.0.0.0/0"), List.of(NetworkLab.POD_CIDR));
  }

  @Test
  void podOnTheGatewayNodeLeavesWithTheEgressIP() {
    payments();
    assertThat(lab.seenSource(lab.pod(1, 1))).contains(EGRESS_IP);
  }

  @Test
  void podOnAnotherNodeIsSteeredThroughTheTunnelAndLeavesWithTheEgressIP() {
    payments();
    assertThat(lab.seenSource(lab.pod(2, 1))).contains(EGRESS_IP);
    assertThat(lab.arrivals(lab.pod(2, 1))).containsOnlyKeys(EGRESS_IP);
  }

  @Test
  void unselectedPodsKeepTheCniPathAndTheirNodesIP() {
    payments();
    assertThat(lab.seenSource(lab.pod(1, 2))).contains(lab.node(1).ip());
    assertThat(lab.seenSource(lab.pod(2, 2))).contains(lab.node(2).ip());
    assertThat(lab.seenSource(lab.pod(3, 1))).contains(lab.node(3).ip());
  }

  @Test
  void excludedDestinationsAndDestinationsOutsideTheCidrsAreNotNated() {
    payments(FailurePolicy.Drop, List.of("0.0.0.0/0"), List.of(NetworkLab.POD_CIDR, NetworkLab.EXTERNAL_IP + "/32"));
    assertThat(lab.seenSource(lab.pod(1, 1))).contains(lab.node(1).ip());
    assertThat(lab.seenSource(lab.pod(2, 1))).contains(lab.node(2).ip());

    payments(FailurePolicy.Drop, List.of("192.0.2.0/24"), List.of(NetworkLab.POD_CIDR));
    assertThat(lab.seenSource(lab.pod(1, 1))).contains(lab.node(1).ip());
    assertThat(lab.seenSource(lab.pod(2, 1))).contains(lab.node(2).ip());

    payments(); // and back: the same pods are NATed again
    assertThat(lab.seenSource(lab.pod(2, 1))).contains(EGRESS_IP);
  }

  @Test
  void twoGatewaysWithTheirOwnIPsAndSourcesSideBySide() {
    LabPod paymentsPod = lab.pod(2, 1);
    LabPod partnersPod = lab.pod(2, 2);
    var all = List.of("0.0.0.0/0");
    var excluded = List.of(NetworkLab.POD_CIDR);
    apply(1, spec("payments", gateway(FailurePolicy.Drop, all, excluded,
        List.of(new Snat(EGRESS_IP, true, List.of(paymentsPod.ip()))), List.of())));
    apply(3, spec("partners", gateway(FailurePolicy.Drop, all, excluded,
        List.of(new Snat(OTHER_EGRESS_IP, true, List.of(partnersPod.ip()))), List.of())));
    var director = spec("payments", gateway(FailurePolicy.Drop, all, excluded, List.of(),
        List.of(new Steer(EGRESS_IP, lab.node(1).name(), lab.node(1).ip(), List.of(paymentsPod.ip())))));
    director.put("partners", gateway(FailurePolicy.Drop, all, excluded, List.of(),
        List.of(new Steer(OTHER_EGRESS_IP, lab.node(3).name(), lab.node(3).ip(), List.of(partnersPod.ip())))));
    apply(2, director);

    assertThat(lab.seenSource(paymentsPod)).contains(EGRESS_IP);
    assertThat(lab.seenSource(partnersPod)).contains(OTHER_EGRESS_IP);
    assertThat(lab.seenSource(lab.pod(1, 2))).contains(lab.node(1).ip());
  }

  /**
   * A pod steered mid-connection stops being selected: the rest of that connection must not leave its node with the
   * pod's own address (its conntrack entry was made without NAT, for the tunnel). It is dropped; new connections
   * take the node's masquerade.
   */
  @Test
  void aSteeredConnectionOfAPodNoLongerSelectedIsDroppedNotLeftUntranslated() throws Exception {
    LabPod pod = lab.pod(2, 1);
    payments();
    try (var c = OpenConnection.of(pod)) {
      assertThat(c.firstLine()).isEqualTo(EGRESS_IP);
      // Not selected any more: node 1 no longer SNATs it, node 2 no longer steers it.
      apply(1, spec("payments", gateway(FailurePolicy.Drop, List.of("0.0.0.0/0"), List.of(NetworkLab.POD_CIDR),
          List.of(new Snat(EGRESS_IP, true, List.of(lab.pod(1, 1).ip()))), List.of())));
      apply(2, spec("payments", gateway(FailurePolicy.Drop, List.of("0.0.0.0/0"), List.of(NetworkLab.POD_CIDR),
          List.of(), List.of())));
      lab.resetArrivals();
      for (int i = 0; i < 3; i++) {
        c.send();
        Thread.sleep(100);
      }
      Thread.sleep(300);
      assertThat(lab.arrivals(pod)).as("the old connection's later packets, by source").isEmpty();
      assertThat(lab.seenSource(pod)).contains(lab.node(2).ip());

      // Selected again: the old connection's packets take the tunnel again, and its gateway's conntrack entry
      // SNATs them as before, to the end of the connection.
      lab.resetArrivals();
      payments();
      c.send();
      assertThat(c.end()).as("the client ended").isTrue();
      Thread.sleep(300);
      assertThat(lab.arrivals(pod)).as("the old connection's last packets, by source").containsOnlyKeys(EGRESS_IP);
    }
  }

  /**
   * natgate uninstalled while a steered connection is open: that connection was set up without NAT (its gateway
   * translated it) and natgate's drop of it is gone with the rest, so its next packets would leave with the pod's own
   * address. The uninstall forgets such connections: their next packets take the node's masquerade.
   */
  @Test
  void aSteeredConnectionOpenAtUninstallNeverLeavesWithThePodsOwnAddress() throws Exception {
    LabPod pod = lab.pod(2, 1);
    payments();
    try (var c = OpenConnection.of(pod)) {
      assertThat(c.firstLine()).isEqualTo(EGRESS_IP);
      lab.resetArrivals();
      for (LabNode n : lab.nodes()) {
        agent(n.index()).removeAll();
      }
      c.send();
      Thread.sleep(300);
      assertThat(lab.arrivals(pod)).as("the connection's packets during and after the uninstall, by source")
          .containsKey(lab.node(2).ip()).doesNotContainKey(pod.ip());
    }
  }

  /**
   * One connection of the pod's to the external host, kept open: its first line is the source the echo server saw;
   * then each {@link #send} sends a byte on the same connection, later. Closing ends the client.
   */
  record OpenConnection(Process process, BufferedReader in, PrintWriter out) implements AutoCloseable {
    static OpenConnection of(LabPod pod) throws IOException {
      String client = """
          import socket, sys
          s = socket.create_connection(("%s", %d), timeout=2)
          print(s.recv(64).decode().strip(), flush=True)
          for line in sys.stdin:
              s.send(b"x")
          """.formatted(NetworkLab.EXTERNAL_IP, pod.probePort());
      var command = new ArrayList<>(lab.nsCommandPrefix(pod.ns()));
      command.addAll(List.of(lab.python(), "-c", client));
      Process p = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.INHERIT).start();
      return new OpenConnection(p, new BufferedReader(new InputStreamReader(p.getInputStream(), UTF_8)),
          new PrintWriter(p.getOutputStream(), true, UTF_8));
    }

    String firstLine() throws IOException {
      return in.readLine();
    }

    void send() {
      out.println("again");
    }

    /** Ends the client's input: true once it exited (within 5 s). */
    boolean end() throws InterruptedException {
      out.close();
      return process.waitFor(5, TimeUnit.SECONDS);
    }

    @Override
    public void close() throws InterruptedException {
      out.close();
      process.destroy();
      process.waitFor();
    }
  }

  /**
   * Connections a pod opened while not selected, which it is then: none leaves with the pod's own address. On the
   * gateway node the node's masquerade, decided at their first packet, stays theirs to the end; on a director their
   * next packets were seen both with the egress IP (a source the external host never saw for that connection, so it
   * cannot go on) and with the node's address. New connections leave with the egress IP.
   */
  @Test
  void connectionsOpenedBeforeAPodIsSelectedNeverLeaveWithThePodsOwnAddress() throws Exception {
    LabPod onGateway = lab.pod(1, 2);
    LabPod onDirector = lab.pod(2, 2);
    payments();
    try (var gatewayConnection = OpenConnection.of(onGateway);
        var directorConnection = OpenConnection.of(onDirector)) {
      assertThat(gatewayConnection.firstLine()).isEqualTo(lab.node(1).ip());
      assertThat(directorConnection.firstLine()).isEqualTo(lab.node(2).ip());
      // Both selected now.
      apply(1, spec("payments", gateway(FailurePolicy.Drop, List.of("0.0.0.0/0"), List.of(NetworkLab.POD_CIDR),
          List.of(new Snat(EGRESS_IP, true, List.of(lab.pod(1, 1).ip(), onGateway.ip(), lab.pod(2, 1).ip(),
              onDirector.ip()))), List.of())));
      apply(2, spec("payments", gateway(FailurePolicy.Drop, List.of("0.0.0.0/0"), List.of(NetworkLab.POD_CIDR),
          List.of(), List.of(new Steer(EGRESS_IP, lab.node(1).name(), lab.node(1).ip(),
              List.of(lab.pod(2, 1).ip(), onDirector.ip()))))));
      lab.resetArrivals();
      for (int i = 0; i < 3; i++) {
        gatewayConnection.send();
        directorConnection.send();
        Thread.sleep(100);
      }
      Thread.sleep(300);
      assertThat(lab.arrivals(onGateway)).as("the gateway node's old connection, by source")
          .containsOnlyKeys(lab.node(1).ip());
      // A director's old connection was decided at its first packet too (the node's masquerade): its later packets
      // reached the external host with the egress IP in some runs, with the node's address in another (load 20).
      // Either way it was opened unselected; what must never happen is its pod's own address leaving.
      System.out.printf("the director's old connection after the pod was selected, by source: %s%n",
          lab.arrivals(onDirector));
      assertThat(lab.arrivals(onDirector)).as("the director's old connection, by source")
          .doesNotContainKeys(onDirector.ip());
      assertThat(lab.seenSource(onGateway)).contains(EGRESS_IP);
      assertThat(lab.seenSource(onDirector)).contains(EGRESS_IP);
    }
  }

  /**
   * The base an agent keeps with no gateway (Renderer.base): every pod's connections, to the external host and to a
   * pod on another node, go as without natgate (the node's address, all answered), not one packet is counted by a
   * natgate rule, and a repair finds nothing to change but puts back what someone removed. A director's first steered
   * pod on it leaves with the egress IP; removing the gateways leaves the base (and @AfterEach, the uninstall,
   * nothing).
   */
  @Test
  void aNodeWithNoGatewayKeepsTheBaseAndForwardsAndNatsAsWithoutNatgate() {
    for (LabNode n : lab.nodes()) {
      agent(n.index()).apply(Renderer.base(agent(n.index()).settings()));
    }
    Map<String, KernelState> withBase = lab.kernelStates();
    assertThat(withBase).isNotEqualTo(baseline);
    lab.resetArrivals();
    for (LabPod pod : lab.pods()) {
      String node = lab.node(pod.node()).ip();
      assertThat(lab.seenSource(pod)).as("%s", pod).contains(node);
      assertThat(lab.arrivals(pod)).as("every packet with its node's address").containsOnlyKeys(node);
    }
    assertThat(lab.seenSource(lab.pod(1, 1), lab.pod(2, 1))).as("pod to pod, unNATed").contains(lab.pod(1, 1).ip());
    for (LabNode n : lab.nodes()) {
      List<String> counted = lab.exec(n.ns(), "iptables-nft-save", "-c").lines()
          .filter(l -> l.contains(" -A NATGATE-") && !l.startsWith("[0:0] ")).toList();
      assertThat(counted).as("natgate's rules that matched a packet on %s", n.name()).isEmpty();
      assertThat(agent(n.index()).repair().changed()).as("the base as observed is the base").isFalse();
    }

    String director = lab.node(2).ns();
    lab.exec(director, "ip", "link", "del", "natgate0");
    lab.exec(director, "iptables", "-t", "mangle", "-D", "PREROUTING", "-j", "NATGATE-PREROUTING");
    assertThat(agent(2).repair().changed()).isTrue();
    assertThat(lab.kernelStates()).isEqualTo(withBase);

    payments(); // the director's first steered pod, on the base
    assertThat(lab.seenSource(lab.pod(2, 1))).contains(EGRESS_IP);
    assertThat(lab.seenSource(lab.pod(2, 2))).contains(lab.node(2).ip());
    for (LabNode n : lab.nodes()) {
      apply(n.index(), Map.of()); // the gateway deleted while the agents run
    }
    assertThat(lab.kernelStates()).as("only the base left").isEqualTo(withBase);
    assertThat(lab.seenSource(lab.pod(2, 1))).contains(lab.node(2).ip());
  }

  @Test
  void removingTheStateLeavesNothingBehind() {
    payments();
    assertThat(lab.seenSource(lab.pod(2, 1))).contains(EGRESS_IP);
    assertThat(lab.kernelStates()).isNotEqualTo(baseline);
    // @AfterEach uninstalls (KernelPlan.EMPTY) on every node and compares iptables-save, ipset, ip addr/rule/route/link.
  }

  @Test
  void aRestartedAgentAppliesTheSameRulesWithoutDuplicatesAndRepairsDrift() {
    payments();
    Map<String, KernelState> programmed = lab.kernelStates();
    agents.values().forEach(NodeDataplane::close);
    agents.clear(); // new agents, nothing in memory: they look at the kernel
    payments();
    assertThat(lab.kernelStates()).isEqualTo(programmed);
    assertThat(lab.seenSource(lab.pod(2, 1))).contains(EGRESS_IP);

    // Someone removes our jump, inserts ahead of it, and deletes the egress IP: the periodic repair puts it back.
    String gw = lab.node(1).ns();
    lab.exec(gw, "iptables", "-t", "nat", "-D", "POSTROUTING", "-j", "NATGATE-POSTROUTING");
    lab.exec(gw, "ip", "address", "del", EGRESS_IP + "/32", "dev", lab.node(1).uplink());
    lab.exec(lab.node(2).ns(), "iptables", "-t", "mangle", "-I", "PREROUTING", "1", "-j", "RETURN");
    assertThat(lab.seenSource(lab.pod(2, 1))).isNotEqualTo(Optional.of(EGRESS_IP));
    assertThat(agent(1).repair().changed()).isTrue();
    assertThat(agent(2).repair().changed()).isTrue();
    assertThat(agent(1).repair().changed()).as("a second repair finds nothing to do").isFalse();
    assertThat(lab.seenSource(lab.pod(2, 1))).contains(EGRESS_IP);
    lab.exec(lab.node(2).ns(), "iptables", "-t", "mangle", "-D", "PREROUTING", "-j", "RETURN"); // not ours: undo it
  }

  @Test
  void aTunnelSettingSomeoneChangedIsPutBackByTheRepair() {
    payments();
    String gw = lab.node(1).ns();
    String rpFilter = "/proc/sys/net/ipv4/conf/" + agent(1).settings().tunnelDevice() + "/rp_filter";
    assertThat(lab.exec(gw, "cat", rpFilter).strip()).isEqualTo("2");
    // Strict reverse-path filtering on the tunnel drops the steered pod's packets: its source routes via the uplink.
    lab.exec(gw, "sh", "-c", "echo 1 > " + rpFilter);
    assertThat(lab.seenSource(lab.pod(2, 1))).as("steered through a strict tunnel").isEmpty();
    assertThat(agent(1).repair().changed()).isTrue();
    assertThat(lab.exec(gw, "cat", rpFilter).strip()).isEqualTo("2");
    assertThat(lab.seenSource(lab.pod(2, 1))).contains(EGRESS_IP);
    assertThat(agent(1).repair().changed()).as("a second repair finds nothing to do").isFalse();
  }

  @Test
  void dropWithNoGatewayLetsNothingOutWhileAllowFallsBackToTheNodeIP() {
    LabPod pod = lab.pod(2, 1);
    var noGateway = List.of(new Steer(EGRESS_IP, null, null, List.of(pod.ip())));
    apply(2, spec("payments", gateway(FailurePolicy.Drop, List.of("0.0.0.0/0"), List.of(NetworkLab.POD_CIDR),
        List.of(), noGateway)));
    lab.resetArrivals();
    for (int i = 0; i < 5; i++) {
      assertThat(lab.seenSource(pod)).isEmpty();
    }
    assertThat(lab.arrivals(pod)).as("packets from the selected pod at the external host").isEmpty();

    apply(2, spec("payments", gateway(FailurePolicy.Allow, List.of("0.0.0.0/0"), List.of(NetworkLab.POD_CIDR),
        List.of(), noGateway)));
    assertThat(lab.seenSource(pod)).contains(lab.node(2).ip());
  }

  @Test
  void takeoverMovesTheIPWithGratuitousArpAndNoDirectorChange() {
    payments();
    LabPod pod = lab.pod(2, 1);
    assertThat(lab.seenSource(pod)).contains(EGRESS_IP); // the external host has node 1's MAC for the egress IP now
    String node3Mac = lab.exec(lab.node(3).ns(), "cat", "/sys/class/net/" + lab.node(3).uplink() + "/address").strip();

    // Node 1 fails over to node 3: node 1 releases, node 3 takes the IP. Node 2 (the director) is not touched:
    // its tunnel's remote end is the egress IP itself.
    long start = System.nanoTime();
    apply(1, new TreeMap<String, NodeGatewayState>());
    apply(3, spec("payments", gateway(FailurePolicy.Drop, List.of("0.0.0.0/0"), List.of(NetworkLab.POD_CIDR),
        List.of(new Snat(EGRESS_IP, true, List.of(lab.pod(1, 1).ip(), pod.ip()))), List.of())));
    await().atMost(SOON).pollInterval(Duration.ofMillis(20))
        .until(() -> lab.seenSource(pod).equals(Optional.of(EGRESS_IP)));
    System.out.printf("takeover: first echo with the egress IP through the new gateway after %d ms%n",
        (System.nanoTime() - start) / 1_000_000);
    assertThat(lab.exec(lab.externalNs(), "ip", "neigh", "show", EGRESS_IP)).contains(node3Mac);
  }

  /**
   * The restart handover's probe ({@link AddressProbe}): node 1 has the egress IP and asks for it; its own kernel does
   * not answer its request, so it hears nothing until node 2 has the IP too.
   */
  @Test
  void onlyAnotherNodesAddressAnswersTheProbe() {
    LabNode one = lab.node(1);
    LabNode two = lab.node(2);
    Kernel kernel = new Kernel(lab.nsCommandPrefix(one.ns()));
    lab.exec(one.ns(), "ip", "address", "add", EGRESS_IP + "/32", "dev", one.uplink());
    try {
      assertThat(AddressProbe.unanswered(kernel, one.uplink(), List.of(EGRESS_IP, OTHER_EGRESS_IP),
          Duration.ofMillis(300))).containsExactly(EGRESS_IP, OTHER_EGRESS_IP);
      lab.exec(two.ns(), "ip", "address", "add", EGRESS_IP + "/32", "dev", two.uplink());
      assertThat(AddressProbe.unanswered(kernel, one.uplink(), List.of(EGRESS_IP, OTHER_EGRESS_IP),
          Duration.ofMillis(300))).containsExactly(OTHER_EGRESS_IP);
    } finally {
      for (LabNode n : List.of(one, two)) {
        if (lab.holds(n, EGRESS_IP)) {
          lab.exec(n.ns(), "ip", "address", "del", EGRESS_IP + "/32", "dev", n.uplink());
        }
      }
    }
  }

  static Map<String, NodeGatewayState> spec(String gateway, NodeGatewayState state) {
    var spec = new TreeMap<String, NodeGatewayState>();
    spec.put(gateway, state);
    return spec;
  }

  static NodeGatewayState gateway(FailurePolicy policy, List<String> cidrs, List<String> excluded, List<Snat> snat,
      List<Steer> steer) {
    var s = new NodeGatewayState();
    s.failurePolicy = policy;
    s.cidrs = cidrs;
    s.excludedCidrs = excluded;
    s.snat = snat;
    s.steer = steer;
    return s;
  }
}
