package io.natgate.lab;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Stream;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.Extension;
import org.junit.jupiter.api.extension.RegisterExtension;

/** The network lab itself, with real packets and no natgate rules: what the data-plane tests stand on. */
class NetworkLabIT {
  // Registered first, so its afterAll runs after the lab's: it checks that the teardown left nothing.
  @RegisterExtension
  @Order(1)
  static final Extension LEAVES_NOTHING = (AfterAllCallback) context -> NetworkLabIT.assertNothingLeft();

  @RegisterExtension
  @Order(2)
  static final NetworkLab lab = NetworkLab.withNodes(3).podsPerNode(2);

  static void assertNothingLeft() throws Exception {
    String prefix = lab.prefix();
    if (prefix == null) {
      return; // skipped: the lab never started
    }
    assertThat(lab.namespaces()).isEmpty();
    assertNoneLeft(prefix, lab.serverPid());
  }

  private static void assertNoneLeft(String prefix, long serverPid) throws Exception {
    assertThat(ProcessHandle.of(serverPid).filter(ProcessHandle::isAlive)).as("the external server").isEmpty();
    for (List<String> listing : List.of(List.of("ip", "netns", "list"), List.of("ip", "-o", "link"))) {
      Process p = new ProcessBuilder(listing).start();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      assertThat(p.waitFor()).isZero();
      assertThat(out).as(String.join(" ", listing)).doesNotContain(prefix);
    }
  }

  @Test
  void aJvmStoppedWithoutClosingItsLabLeavesNothing() throws Exception {
    String java = ProcessHandle.current().info().command().orElse("java");
    Process child = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"), LeftOpen.class.getName())
        .redirectError(ProcessBuilder.Redirect.INHERIT).start();
    try {
      BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
      String line;
      do {
        line = out.readLine();
      } while (line != null && !line.startsWith("lab "));
      assertThat(line).as("the child's lab").isNotNull();
      String[] started = line.split(" ");
      child.destroy(); // SIGTERM, as a CI timeout or Ctrl-C would: only the shutdown hook cleans up
      assertThat(child.waitFor()).isNotZero();
      assertNoneLeft(started[1], Long.parseLong(started[2]));
    } finally {
      child.destroyForcibly().waitFor();
    }
  }

  /** A JVM that starts a lab and never closes it. */
  static final class LeftOpen {
    public static void main(String[] args) throws InterruptedException {
      NetworkLab lab = NetworkLab.withNodes(1).podsPerNode(1);
      lab.start();
      System.out.println("lab " + lab.prefix() + " " + lab.serverPid());
      Thread.sleep(60_000);
    }
  }

  @Test
  void podTrafficLeavesWithItsNodesAddress() {
    long start = System.nanoTime();
    assertThat(lab.seenSource(lab.pod(1, 1))).contains("198.18.0.11");
    System.out.printf("one connection from a pod: %d ms%n", (System.nanoTime() - start) / 1_000_000);
    assertThat(lab.seenSource(lab.pod(3, 2))).contains("198.18.0.13");
  }

  @Test
  void arrivalsAreCountedBySourceForThePodsPort() {
    LabPod pod = lab.pod(2, 1);
    lab.resetArrivals();
    assertThat(lab.seenSource(pod)).contains("198.18.0.12");
    Map<String, Long> arrivals = lab.arrivals(pod);
    assertThat(arrivals).containsOnlyKeys("198.18.0.12");
    assertThat(arrivals.get("198.18.0.12")).isGreaterThanOrEqualTo(2); // the handshake's SYN and ACK at least
    assertThat(lab.arrivals(lab.pod(2, 2))).isEmpty();
  }

  @Test
  void podToPodAcrossNodesIsRoutedWithoutNat() {
    assertThat(lab.seenSource(lab.pod(1, 1), lab.pod(2, 2))).contains("198.19.1.11");
    assertThat(lab.seenSource(lab.pod(3, 1), lab.pod(1, 2))).contains("198.19.3.11");
  }

  @Test
  void aPacketThatLeavesWithThePodsAddressIsCountedThoughNeverAnswered() {
    LabNode node = lab.node(1);
    LabPod pod = lab.pod(1, 2);
    KernelState before = lab.kernelState(node.ns());
    String[] rule = {"-s", pod.ip(), "-j", "RETURN"}; // ahead of the CNI's masquerade: the pod's address leaks
    lab.exec(node.ns(), concat(List.of("iptables", "-t", "nat", "-I", "POSTROUTING"), rule));
    lab.exec(node.ns(), "ipset", "create", "lab-dummy", "hash:ip");
    KernelState during = lab.kernelState(node.ns());
    try {
      lab.resetArrivals();
      assertThat(lab.seenSource(pod)).isEmpty();
      assertThat(lab.arrivals(pod)).containsOnlyKeys(pod.ip());
    } finally {
      lab.exec(node.ns(), concat(List.of("iptables", "-t", "nat", "-D", "POSTROUTING"), rule));
      lab.exec(node.ns(), "ipset", "destroy", "lab-dummy");
    }
    assertThat(during).isNotEqualTo(before);
    assertThat(before.diff(during)).contains("+ -A POSTROUTING -s 198.19.1.12/32 -j RETURN", "+ lab-dummy");
    assertThat(lab.kernelState(node.ns())).isEqualTo(before);
    assertThat(lab.seenSource(pod)).contains("198.18.0.11");
  }

  @Test
  void aTableUsedAndEmptiedAgainLeavesNoResidue() {
    String ns = lab.node(2).ns();
    Map<String, KernelState> before = lab.kernelStates();
    lab.exec(ns, "iptables", "-t", "mangle", "-A", "PREROUTING", "-j", "MARK", "--set-mark", "0x100");
    lab.exec(ns, "ip", "rule", "add", "fwmark", "0x100", "lookup", "100");
    lab.exec(ns, "ip", "addr", "add", "198.18.0.100/32", "dev", "eth0");
    String diff = before.get(ns).diff(lab.kernelState(ns));
    System.out.println(diff);
    assertThat(diff).contains("+ *mangle", "+ -A PREROUTING -j MARK --set-xmark 0x100/0xffffffff",
        "+ 32765:\tfrom all fwmark 0x100 lookup 100", "+ eth0 inet 198.18.0.100/32");
    lab.exec(ns, "iptables", "-t", "mangle", "-D", "PREROUTING", "-j", "MARK", "--set-mark", "0x100");
    lab.exec(ns, "ip", "rule", "del", "fwmark", "0x100", "lookup", "100");
    lab.exec(ns, "ip", "addr", "del", "198.18.0.100/32", "dev", "eth0");
    Map<String, KernelState> after = lab.kernelStates();
    assertThat(after).as(() -> before.get(ns).diff(after.get(ns))).isEqualTo(before);
  }

  @Test
  void aCutLinkStopsTheNodesTrafficUntilRestored() {
    LabNode node = lab.node(3);
    LabPod pod = lab.pod(3, 1);
    long start = System.nanoTime();
    lab.cutLink(node);
    System.out.printf("cutLink took %d ms%n", (System.nanoTime() - start) / 1_000_000);
    try {
      lab.resetArrivals();
      assertThat(lab.seenSource(pod)).isEmpty();
      assertThat(lab.arrivals(pod)).isEmpty();
    } finally {
      start = System.nanoTime();
      lab.restoreLink(node);
      System.out.printf("restoreLink took %d ms%n", (System.nanoTime() - start) / 1_000_000);
    }
    awaitTraffic(pod);
    assertThat(lab.seenSource(pod)).contains(node.ip());
  }

  /** After a cut the node may hold its traffic until its next ARP retry for the gateway: up to a second more. */
  private static void awaitTraffic(LabPod pod) {
    long start = System.nanoTime();
    await().atMost(Duration.ofSeconds(5)).pollInterval(Duration.ofMillis(10)).until(() -> lab.seenSource(pod),
        Optional::isPresent);
    System.out.printf("traffic from %s back %d ms after restoreLink%n", pod.name(),
        (System.nanoTime() - start) / 1_000_000);
  }

  @Test
  void aProberRecordsAnOutage() throws InterruptedException {
    LabNode node = lab.node(2);
    Prober prober = lab.startProbing(lab.pod(2, 2), Duration.ofMillis(20));
    // Answered before the cut (the first probe on a loaded machine may time out while the lab warms up).
    await().atMost(Duration.ofSeconds(10)).until(() -> prober.answeredSince(Instant.EPOCH) > 0);
    Instant cut = Instant.now();
    lab.cutLink(node);
    Thread.sleep(300);
    lab.restoreLink(node);
    Instant restored = Instant.now();
    awaitTraffic(lab.pod(2, 1));
    await().atMost(Duration.ofSeconds(10)).until(() -> prober.answeredSince(restored) > 0);
    List<Prober.Probe> probes = prober.stop();

    assertThat(probes).hasSizeGreaterThan(10);
    assertThat(probes).allSatisfy(p -> assertThat(p.source().orElse(node.ip())).isEqualTo(node.ip()));
    assertThat(probes).filteredOn(p -> p.at().isBefore(cut)).anySatisfy(p -> assertThat(p.source()).isPresent());
    assertThat(probes).filteredOn(p -> p.at().isAfter(restored)).anySatisfy(p -> assertThat(p.source()).isPresent());
    long failed = probes.stream().filter(p -> p.source().isEmpty()).count();
    // Only some: once the node sees carrier loss it flushes its ARP entries and holds new packets until resolved.
    assertThat(failed).isPositive();
    System.out.printf("%d probes, %d failed; a successful probe took %d ms%n", probes.size(), failed,
        probes.get(0).took().toMillis());
  }

  private static String[] concat(List<String> head, String... tail) {
    return Stream.concat(head.stream(), Stream.of(tail)).toArray(String[]::new);
  }
}
