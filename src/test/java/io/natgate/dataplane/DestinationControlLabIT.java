package io.natgate.dataplane;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.natgate.api.v1alpha1.AllowEntry;
import io.natgate.api.v1alpha1.ConnectionLogState;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.api.v1alpha1.NodeGatewayState.Snat;
import io.natgate.api.v1alpha1.NodeGatewayState.Steer;
import io.natgate.api.v1alpha1.PortRange;
import io.natgate.connlog.ConnectionLog;
import io.natgate.dns.SetMembers;
import io.natgate.lab.KernelState;
import io.natgate.lab.LabPod;
import io.natgate.lab.NetworkLab;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Destination control with real packets: node-1 is the gateway of "payments" (egress IP 198.18.0.100) for pod-1-1
 * (on it) and pod-2-1, pod-2-2 (on node-2, steered through the tunnel), with the allow list [203.0.113.0/25 tcp 80,
 * api.payments.example]. The external host answers on 203.0.113.10 (inside the CIDR) and 203.0.113.200 (outside),
 * ports 80 and 81. The connection log runs as the agent runs it, with its refusals (NFLOG) in node-1's namespace.
 * Needs root; skipped otherwise.
 */
class DestinationControlLabIT {
  static final String EGRESS_IP = "198.18.0.100";
  static final String INSIDE = NetworkLab.EXTERNAL_IP;
  static final String OUTSIDE = "203.0.113.200";
  static final String NAME = "api.payments.example";
  static final ObjectMapper JSON = new ObjectMapper();

  @RegisterExtension
  static final NetworkLab lab = NetworkLab.withNodes(2).podsPerNode(2);

  @TempDir
  Path dir;
  SimpleMeterRegistry registry = new SimpleMeterRegistry();
  ConnectionLog log;
  NodeDataplane gateway;
  NodeDataplane director;
  List<Process> servers = new ArrayList<>();
  Map<String, KernelState> baseline;

  @BeforeEach
  void start() {
    if (!lab.exec(lab.externalNs(), "ip", "-4", "-o", "address", "show", "dev", "lo").contains(OUTSIDE + "/32")) {
      lab.exec(lab.externalNs(), "ip", "address", "add", OUTSIDE + "/32", "dev", "lo");
    }
    baseline = lab.kernelStates();
    gateway = dataplane(1);
    director = dataplane(2);
    var defaults = ConnectionLog.Settings.defaults();
    log = new ConnectionLog(new Kernel(lab.nsCommandPrefix(lab.node(1).ns())), lab.node(1).name(),
        new ConnectionLog.Settings(dir.resolve("connections.log"), defaults.maxFileBytes(), defaults.keepFiles(),
            defaults.queueSize(), defaults.socketBufferBytes()), registry);
    director.apply(Renderer.render(payments(false, null), director.settings()));
    servers.add(lab.startConnectServer("0.0.0.0", 80));
    servers.add(lab.startConnectServer("0.0.0.0", 81));
  }

  @AfterEach
  void stop() throws Exception {
    for (Process server : servers) {
      server.getOutputStream().close(); // it exits at the end of its input
      server.waitFor();
    }
    log.close();
    gateway.apply(KernelPlan.EMPTY);
    director.apply(KernelPlan.EMPTY);
    gateway.close();
    director.close();
    Map<String, KernelState> after = lab.kernelStates();
    assertThat(after).as(() -> "residue: " + baseline.keySet().stream()
        .map(ns -> baseline.get(ns).diff(after.get(ns))).toList()).isEqualTo(baseline);
  }

  NodeDataplane dataplane(int node) {
    return new NodeDataplane(new Kernel(lab.nsCommandPrefix(lab.node(node).ns())),
        DataplaneSettings.defaults(lab.node(node).uplink()));
  }

  /** The names' set type of this kernel (this project's lab kernel has only the port type). */
  String nameSets() {
    return gateway.nameSetType();
  }

  static List<AllowEntry> allowList() {
    return List.of(AllowEntry.cidr("203.0.113.0/25", PortRange.tcp(80)), AllowEntry.fqdn(NAME, PortRange.tcp(81)));
  }

  /** node-1's part (the gateway) or node-2's (steering its two pods to node-1). */
  Map<String, NodeGatewayState> payments(boolean onGateway, List<AllowEntry> allow) {
    var s = new NodeGatewayState();
    s.cidrs = List.of("0.0.0.0/0");
    s.excludedCidrs = List.of(NetworkLab.POD_CIDR);
    s.allow = allow;
    if (onGateway) {
      s.snat.add(new Snat(EGRESS_IP, true, List.of(lab.pod(1, 1).ip(), lab.pod(2, 1).ip(), lab.pod(2, 2).ip())));
      s.connectionLog = new ConnectionLogState(new TreeMap<>(Map.of(lab.pod(1, 1).ip(), "shop/api-1",
          lab.pod(2, 1).ip(), "shop/api-2", lab.pod(2, 2).ip(), "shop/api-3")));
    } else {
      s.steer.add(new Steer(EGRESS_IP, lab.node(1).name(), lab.node(1).ip(),
          List.of(lab.pod(2, 1).ip(), lab.pod(2, 2).ip())));
    }
    return new TreeMap<>(Map.of("payments", s));
  }

  /** What connect.py reported for {@code count} connections, one at a time. */
  record Made(int ok, int failed, double seconds, Map<String, Integer> errors) {
  }

  static Made connect(LabPod pod, String to, int port, int count) {
    try {
      JsonNode r = JSON.readTree(lab.connectClient(pod.ns(), "--to", to, "--port", String.valueOf(port), "--count",
          String.valueOf(count), "--threads", "1"));
      Map<String, Integer> errors = new TreeMap<>();
      r.path("errors").fields().forEachRemaining(e -> errors.put(e.getKey(), e.getValue().asInt()));
      return new Made(r.path("ok").asInt(), r.path("failed").asInt(), r.path("seconds").asDouble(), errors);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Sources of the TCP packets that reached the external host on a port since the last reset. */
  static Map<String, Long> arrived(int port) {
    return lab.arrivals(port);
  }

  /**
   * Applies node-1's part, the log first (listening before the rules log), as the agent does: where the kernel has no
   * set type for the names, they match nothing (and the rest applies).
   */
  void applyGateway(List<AllowEntry> allow) {
    Map<String, NodeGatewayState> state = payments(true, allow);
    log.update(state);
    gateway.apply(Renderer.render(state, gateway.settings(), nameSets()));
  }

  /** The denied records written so far. */
  List<JsonNode> denied() {
    try {
      Path file = dir.resolve("connections.log");
      List<JsonNode> records = new ArrayList<>();
      for (String line : Files.exists(file) ? Files.readAllLines(file) : List.<String>of()) {
        JsonNode r = JSON.readTree(line);
        if (r.path("event").asText().equals("denied")) {
          records.add(r);
        }
      }
      return records;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static long count(List<JsonNode> records, LabPod pod, String dst, int port) {
    return records.stream().filter(r -> r.path("srcIP").asText().equals(pod.ip()) && r.path("dstIP").asText().equals(dst)
        && r.path("dstPort").asInt() == port).count();
  }

  @Test
  void onlyAllowedDestinationsAreReachedAndTheRestIsRefusedAtOnce() throws Exception {
    applyGateway(allowList());
    List<LabPod> pods = List.of(lab.pod(1, 1), lab.pod(2, 1)); // on the gateway, and through the tunnel
    for (LabPod pod : pods) {
      lab.resetArrivals();
      Made allowed = connect(pod, INSIDE, 80, 10);
      assertThat(allowed.ok()).as("%s to the allowed CIDR and port", pod).isEqualTo(10);
      assertThat(arrived(80)).as("seen with the egress IP only").containsOnlyKeys(EGRESS_IP);

      Made otherPort = connect(pod, INSIDE, 81, 10);
      Made otherAddress = connect(pod, OUTSIDE, 80, 10);
      System.out.printf("%s: allowed 10 in %.3f s; refused: another port 10 in %.3f s %s, another address 10 in "
          + "%.3f s %s%n", pod, allowed.seconds(), otherPort.seconds(), otherPort.errors(), otherAddress.seconds(),
          otherAddress.errors());
      // A reset answers the SYN: ECONNREFUSED at once (a drop would be a 3 s timeout each).
      assertThat(otherPort.errors()).as("another port").containsExactly(Map.entry("ECONNREFUSED", 10));
      assertThat(otherAddress.errors()).as("another address").containsExactly(Map.entry("ECONNREFUSED", 10));
      assertThat(arrived(81)).as("nothing reached port 81").isEmpty();
      assertThat(arrived(80)).as("nothing more reached port 80, and only with the egress IP")
          .containsOnlyKeys(EGRESS_IP);
    }
    // UDP is refused with ICMP administratively prohibited: the client's next receive fails at once.
    String udp = lab.exec(lab.pod(1, 1).ns(), lab.python(), "-c", """
        import socket, errno
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2); s.connect(("%s", 9999)); s.send(b"x")
        try:
            s.recv(10); print("answered")
        except OSError as e:
            print(errno.errorcode.get(e.errno, type(e).__name__))
        """.formatted(OUTSIDE));
    assertThat(udp.trim()).isEqualTo("EHOSTUNREACH");

    // Every refusal is one denied record naming the pod, the gateway and the egress IP it would have left with.
    org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(10)).until(() -> denied().size() >= 41);
    assertThat(log.drain(Duration.ofSeconds(5))).isTrue();
    List<JsonNode> records = denied();
    assertThat(records).hasSize(41);
    for (LabPod pod : pods) {
      assertThat(count(records, pod, INSIDE, 81)).as("%s to another port", pod).isEqualTo(10);
      assertThat(count(records, pod, OUTSIDE, 80)).as("%s to another address", pod).isEqualTo(10);
    }
    assertThat(records).allSatisfy(r -> {
      assertThat(r.path("schema").asText()).isEqualTo("natgate.io/connection-log/v1");
      assertThat(r.path("gateway").asText()).isEqualTo("payments");
      assertThat(r.path("egressIP").asText()).isEqualTo(EGRESS_IP);
      assertThat(r.path("node").asText()).isEqualTo(lab.node(1).name());
      assertThat(r.path("podNamespace").asText()).isEqualTo("shop");
      assertThat(r.has("conntrackId")).isFalse();
    });
    assertThat(records).filteredOn(r -> r.path("protocol").asText().equals("udp")).singleElement()
        .satisfies(r -> assertThat(r.path("dstPort").asInt()).isEqualTo(9999));
    assertThat(registry.find("natgate_agent_connections_denied_total").counter().count()).isEqualTo(41);

    // Without the list, plain egress again: the other port and address are reached, with the egress IP.
    applyGateway(null);
    lab.resetArrivals();
    assertThat(connect(lab.pod(2, 1), OUTSIDE, 81, 5).ok()).isEqualTo(5);
    assertThat(arrived(81)).containsOnlyKeys(EGRESS_IP);
    assertThat(lab.exec(lab.node(1).ns(), "iptables-save", "-t", "filter")).doesNotContain("NATGATE-ALLOW");
  }

  @Test
  void anAddressAnsweredToOnePodIsReachableForThatPodOnly() {
    Assumptions.assumeTrue(nameSets() != null, "this kernel's ipset has neither " + DestinationSets.TYPE + " nor "
        + DestinationSets.PORT_TYPE + ": the names' sets cannot be created here");
    applyGateway(allowList());
    String set = DestinationSets.fqdn("payments", NAME);
    assertThat(connect(lab.pod(2, 1), OUTSIDE, 81, 1).failed()).isEqualTo(1);
    // What the DNS path does when pod-2-1 is answered OUTSIDE for the name.
    for (String member : SetMembers.of(nameSets(), lab.pod(2, 1).ip(), OUTSIDE, List.of(PortRange.tcp(81)))) {
      lab.exec(lab.node(1).ns(), "ipset", "add", set, member, "timeout", "60", "-exist");
    }
    lab.resetArrivals();
    assertThat(connect(lab.pod(2, 1), OUTSIDE, 81, 5).ok()).as("the pod that was answered").isEqualTo(5);
    assertThat(connect(lab.pod(2, 2), OUTSIDE, 81, 5).errors()).as("another pod")
        .containsExactly(Map.entry("ECONNREFUSED", 5));
    assertThat(arrived(81)).containsOnlyKeys(EGRESS_IP).containsEntry(EGRESS_IP, arrived(81).get(EGRESS_IP));
    // A repair leaves what the DNS path added.
    gateway.repair();
    assertThat(lab.exec(lab.node(1).ns(), "ipset", "list", set)).contains(lab.pod(2, 1).ip() + ",").contains(OUTSIDE);
  }
}
