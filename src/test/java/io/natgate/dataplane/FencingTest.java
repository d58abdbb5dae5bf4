package io.natgate.dataplane;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.natgate.api.v1alpha1.FailurePolicy;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.testing.FakeKernel;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Fencing on its own path: releasing the egress IPs never waits for an apply that holds the data plane (a slow
 * {@code iptables-restore}), and an apply that was about to add an IP when the fence came adds nothing.
 */
class FencingTest {
  static final String EGRESS_IP = "198.18.0.100";
  static final String SECOND_IP = "198.18.0.101";

  private final FakeKernel kernel = new FakeKernel("eth0");
  private final NodeDataplane dataplane = new NodeDataplane(kernel, DataplaneSettings.defaults("eth0"));

  static KernelPlan holding(List<String> ips) {
    var gw = new NodeGatewayState();
    gw.failurePolicy = FailurePolicy.Drop;
    gw.cidrs = List.of("0.0.0.0/0");
    for (int i = 0; i < ips.size(); i++) {
      gw.snat.add(new NodeGatewayState.Snat(ips.get(i), true, List.of("198.19.1." + (11 + i))));
    }
    return Renderer.render(Map.of("payments", gw), DataplaneSettings.defaults("eth0"));
  }

  @Test
  void fencingReleasesAtOnceWhileAnApplyHoldsTheDataplaneAndThatApplyAddsNothing() throws Exception {
    dataplane.apply(holding(List.of(EGRESS_IP)));
    assertThat(kernel.addresses()).containsExactly(EGRESS_IP);

    // The next apply (a second IP) stalls in iptables-restore, before the step that would add its IP.
    kernel.holdNext(c -> c.startsWith(IptablesBackend.NFT.restore()));
    var apply = CompletableFuture.runAsync(() -> dataplane.apply(holding(List.of(EGRESS_IP, SECOND_IP))));
    assertThat(kernel.awaitHeld(Duration.ofSeconds(5))).isTrue();
    try {
      // The stalled apply is released only after the fence returns: a fence that waited for it would never return.
      CompletableFuture.runAsync(dataplane::fence).get(30, TimeUnit.SECONDS);
      assertThat(apply).as("the apply, still stalled when the fence returned").isNotDone();
      assertThat(kernel.addresses()).as("held right after the fence").isEmpty();
      kernel.release();

      apply.get(10, TimeUnit.SECONDS);
      assertThat(kernel.addresses()).as("held once the stalled apply finished").isEmpty();
      assertThat(dataplane.repair().announced()).isEmpty();
      assertThat(kernel.addresses()).as("held after a repair while fenced").isEmpty();
    } finally {
      kernel.release();
    }

    dataplane.unfence();
    dataplane.apply(holding(List.of(EGRESS_IP, SECOND_IP)));
    assertThat(kernel.addresses()).containsExactly(EGRESS_IP, SECOND_IP);
  }

  /**
   * Renewing the egress IPs' lifetimes never waits for an apply: under load an apply takes seconds, longer than the
   * lifetime, and the holder's address expired during a planned move while its renewal waited (FaultsE2E).
   */
  @Test
  void aLifetimeRenewalDoesNotWaitForAStalledApply() throws Exception {
    var expiring = new NodeDataplane(kernel, withLifetime());
    expiring.apply(holding(List.of(EGRESS_IP)));
    kernel.holdNext(c -> c.startsWith(IptablesBackend.NFT.restore()));
    var apply = CompletableFuture.runAsync(() -> expiring.apply(holding(List.of(EGRESS_IP, SECOND_IP))));
    try {
      assertThat(kernel.awaitHeld(Duration.ofSeconds(5))).isTrue();
      expiring.refreshHeld();
      assertThat(apply).as("the apply, still stalled").isNotDone();
      assertThat(kernel.commandsWith("address change")).as("renewed: what the last apply added, not what this one adds")
          .singleElement().asString().contains(EGRESS_IP).doesNotContain(SECOND_IP);
    } finally {
      kernel.release();
    }
    apply.get(10, TimeUnit.SECONDS);
    assertThat(kernel.addresses()).containsExactly(EGRESS_IP, SECOND_IP);
  }

  /** Nor does a renewal put back an IP that an apply is releasing. */
  @Test
  void aLifetimeRenewalDuringAReleaseDoesNotPutTheIPBack() throws Exception {
    var expiring = new NodeDataplane(kernel, withLifetime());
    expiring.apply(holding(List.of(EGRESS_IP)));
    kernel.holdNext(c -> c.startsWith("ip -batch -") && c.contains(EGRESS_IP)); // the release step
    var apply = CompletableFuture.runAsync(() -> expiring.apply(holding(List.of())));
    try {
      assertThat(kernel.awaitHeld(Duration.ofSeconds(5))).isTrue();
      expiring.refreshHeld();
    } finally {
      kernel.release();
    }
    apply.get(10, TimeUnit.SECONDS);
    assertThat(kernel.commandsWith("address change")).isEmpty();
    assertThat(kernel.addresses()).isEmpty();
    expiring.apply(KernelPlan.EMPTY); // the gateway gone: nothing held, nothing to renew
    expiring.refreshHeld();
    assertThat(kernel.commandsWith("address change")).isEmpty();
  }

  /**
   * Nor does an apply wait for a renewal in flight unless it stops renewing an IP: a pod added on the holder is not
   * held up by the renewal's command (every heartbeat, up to 150 ms under load).
   */
  @Test
  void anApplyThatKeepsTheIPsDoesNotWaitForARenewalInFlight() throws Exception {
    var expiring = new NodeDataplane(kernel, withLifetime());
    expiring.apply(holding(List.of(EGRESS_IP)));
    kernel.holdNext(c -> c.contains("address change"));
    var renewal = CompletableFuture.runAsync(expiring::refreshHeld);
    try {
      assertThat(kernel.awaitHeld(Duration.ofSeconds(5))).isTrue();
      CompletableFuture.runAsync(() -> expiring.apply(holding(List.of(EGRESS_IP, SECOND_IP))))
          .get(30, TimeUnit.SECONDS);
      assertThat(renewal).as("the renewal, still in its command when the apply returned").isNotDone();
    } finally {
      kernel.release();
    }
    renewal.get(10, TimeUnit.SECONDS);
    assertThat(kernel.addresses()).containsExactly(EGRESS_IP, SECOND_IP);
  }

  /** An apply releasing an IP waits for a renewal in flight, which would otherwise put it back after the release. */
  @Test
  void anApplyReleasingAnIPWaitsForARenewalInFlight() throws Exception {
    var expiring = new NodeDataplane(kernel, withLifetime());
    expiring.apply(holding(List.of(EGRESS_IP)));
    kernel.holdNext(c -> c.contains("address change"));
    var renewal = CompletableFuture.runAsync(expiring::refreshHeld);
    Thread apply = new Thread(() -> expiring.apply(holding(List.of())));
    try {
      assertThat(kernel.awaitHeld(Duration.ofSeconds(5))).isTrue();
      apply.start();
      // Released once the apply either finished (a release before the renewal's command ended) or waits for it.
      await().atMost(Duration.ofSeconds(30)).until(() -> !apply.isAlive() || apply.getState() == Thread.State.BLOCKED);
    } finally {
      kernel.release();
    }
    renewal.get(10, TimeUnit.SECONDS);
    apply.join(10_000);
    assertThat(kernel.addresses()).isEmpty();
  }

  static DataplaneSettings withLifetime() {
    var d = DataplaneSettings.defaults("eth0");
    return new DataplaneSettings(d.uplink(), d.tunnelDevice(), d.tunnelPort(), d.markMask(), d.tableBase(),
        d.rulePriority(), 1);
  }

  /**
   * A fence that removes the address while an apply is about to release it (that apply saw it there) does not make the
   * apply fail: under load, "Address not found" failed applies and delayed the next one by a second.
   */
  @Test
  void anApplyReleasingAnAddressTheFenceRemovedMeanwhileSucceeds() throws Exception {
    dataplane.apply(holding(List.of(EGRESS_IP)));
    kernel.holdNext(c -> c.startsWith("ip -batch -") && c.contains(EGRESS_IP)); // the release step
    var apply = CompletableFuture.runAsync(() -> dataplane.apply(holding(List.of())));
    try {
      assertThat(kernel.awaitHeld(Duration.ofSeconds(5))).isTrue();
      CompletableFuture.runAsync(dataplane::fence).get(30, TimeUnit.SECONDS); // the fence's release runs first
      assertThat(kernel.addresses()).isEmpty();
    } finally {
      kernel.release();
    }
    apply.get(10, TimeUnit.SECONDS);
    assertThat(kernel.addresses()).isEmpty();
  }

  /** Nor does an apply fail that adds an address put back since it last looked ("Address already assigned"). */
  @Test
  void anApplyAddingAnAddressAlreadyThereSucceeds() {
    dataplane.apply(holding(List.of()));
    kernel.run("address add " + EGRESS_IP + "/32 dev eth0\n", "ip", "-batch", "-"); // behind the trusted state
    assertThat(dataplane.apply(holding(List.of(EGRESS_IP))).announced()).containsExactly(EGRESS_IP);
    assertThat(kernel.addresses()).containsExactly(EGRESS_IP);
  }

  /**
   * A planned move hands the IP to another node, which announces it from then on: the leaving holder keeps the
   * address a moment (make-before-break) but stops announcing it at once, or its repeated gratuitous ARP (for 3 s
   * after it took the IP) turns the neighbours back to an address it is about to remove.
   */
  @Test
  void aHolderHandingItsIPOverKeepsTheAddressButStopsAnnouncingIt() throws Exception {
    kernel.keepStartedRunning();
    try {
      dataplane.apply(holding(List.of(EGRESS_IP)));
      assertThat(kernel.commandsWith("arping")).singleElement().asString().contains(EGRESS_IP);
      Process announcing = kernel.started().get(0);
      assertThat(announcing.isAlive()).isTrue();

      var leaving = new NodeGatewayState();
      leaving.failurePolicy = FailurePolicy.Drop;
      leaving.cidrs = List.of("0.0.0.0/0");
      leaving.snat.add(new NodeGatewayState.Snat(EGRESS_IP, true, List.of("198.19.1.11", "198.19.2.11")));
      leaving.steer.add(new NodeGatewayState.Steer(EGRESS_IP, "node-2", "198.18.0.12", List.of("198.19.1.11")));
      KernelPlan handingOver = Renderer.render(Map.of("payments", leaving), DataplaneSettings.defaults("eth0"));
      assertThat(handingOver.handingOver()).containsExactly(EGRESS_IP);
      assertThat(holding(List.of(EGRESS_IP)).handingOver()).as("a holder's plain part").isEmpty();

      dataplane.apply(handingOver);
      assertThat(kernel.addresses()).as("still held: make-before-break").containsExactly(EGRESS_IP);
      announcing.onExit().get(10, TimeUnit.SECONDS); // stopped; it would have run 60 s
    } finally {
      dataplane.close();
      kernel.started().forEach(Process::destroy);
    }
  }

  /** A standby's part: the SNAT to {@code ips} in place, no address held. */
  static KernelPlan standby(List<String> ips) {
    var gw = new NodeGatewayState();
    gw.failurePolicy = FailurePolicy.Drop;
    gw.cidrs = List.of("0.0.0.0/0");
    ips.forEach(ip -> gw.snat.add(new NodeGatewayState.Snat(ip, false, List.of("198.19.3.11"))));
    return Renderer.render(Map.of("payments", gw), DataplaneSettings.defaults("eth0"));
  }

  /**
   * A takeover adds the address and announces it without waiting for an apply in progress (a slow ipset or iptables),
   * only for an IP whose SNAT is in place, recorded in the held set first; a fence after it removes it again.
   */
  @Test
  void aTakeoverAddsAReadyIPAtOnceWhileAnApplyStallsAndAFenceRemovesIt() throws Exception {
    dataplane.apply(standby(List.of(EGRESS_IP)));
    kernel.holdNext(c -> c.startsWith("ipset")); // the apply's record of the IP in the held set stalls
    var apply = CompletableFuture.runAsync(() -> dataplane.apply(holding(List.of(EGRESS_IP))));
    try {
      assertThat(kernel.awaitHeld(Duration.ofSeconds(5))).isTrue();
      var taken = CompletableFuture.supplyAsync(() -> dataplane.take(java.util.Set.of(EGRESS_IP, SECOND_IP)))
          .get(30, TimeUnit.SECONDS);
      assertThat(taken).as("taken: the IP with its SNAT in place, not the other").containsExactly(EGRESS_IP);
      assertThat(apply).as("the apply, still stalled").isNotDone();
      assertThat(kernel.addresses()).containsExactly(EGRESS_IP);
      List<String> commands = kernel.commands();
      int recorded = indexOf(commands, "ipset -exist restore\nadd " + DataplaneSettings.HELD_SET + " " + EGRESS_IP);
      int added = indexOf(commands, "ip -batch -\naddress replace " + EGRESS_IP + "/32");
      assertThat(recorded).as("recorded in the held set before it is added").isNotNegative().isLessThan(added);
      assertThat(kernel.commandsWith("arping")).singleElement().asString().contains(EGRESS_IP);
    } finally {
      kernel.release();
    }
    apply.get(10, TimeUnit.SECONDS);
    assertThat(kernel.addresses()).containsExactly(EGRESS_IP);
    dataplane.fence();
    assertThat(kernel.addresses()).isEmpty();
  }

  /**
   * The takeover's first gratuitous ARP goes out before its commands: the neighbours move the IP here while the
   * held set's record and the address are still being written (the SNAT is in place already).
   */
  @Test
  void aTakeoverAnnouncesTheIPBeforeItsCommands() {
    List<Integer> sentAfterCommands = new CopyOnWriteArrayList<>();
    List<String> sentFor = new CopyOnWriteArrayList<>();
    var announcing = new NodeDataplane(kernel, DataplaneSettings.defaults("eth0"), IptablesBackend.NFT, ip -> {
      sentFor.add(ip);
      sentAfterCommands.add(kernel.commands().size());
    });
    announcing.apply(standby(List.of(EGRESS_IP)));
    int before = kernel.commands().size();

    assertThat(announcing.take(java.util.Set.of(EGRESS_IP))).containsExactly(EGRESS_IP);

    List<String> commands = kernel.commands();
    int recorded = indexOf(commands, "ipset -exist restore\nadd " + DataplaneSettings.HELD_SET + " " + EGRESS_IP);
    assertThat(recorded).isGreaterThanOrEqualTo(before);
    assertThat(sentFor).as("sent by the agent: before the commands, then with arping's start").containsExactly(
        EGRESS_IP, EGRESS_IP);
    assertThat(sentAfterCommands.get(0)).as("commands run when the first was sent").isEqualTo(before);
    assertThat(kernel.addresses()).containsExactly(EGRESS_IP);
    assertThat(kernel.commandsWith("arping")).singleElement().asString().contains(EGRESS_IP);
  }

  @Test
  void aTakeoverOfAnIPWithoutItsSnatAddsNothing() {
    dataplane.apply(standby(List.of(SECOND_IP)));
    int before = kernel.commands().size();
    assertThat(dataplane.take(java.util.Set.of(EGRESS_IP))).isEmpty();
    assertThat(kernel.commands()).hasSize(before);
    assertThat(kernel.addresses()).isEmpty();
  }

  /** The IPs a takeover may add are read from the SNAT rules, with or without a port range. */
  @Test
  void theIPsReadyForATakeoverAreThoseTheSnatRulesTranslateTo() {
    assertThat(standby(List.of(EGRESS_IP)).translatedTo()).containsExactly(EGRESS_IP);
    var gw = new NodeGatewayState();
    gw.failurePolicy = FailurePolicy.Drop;
    gw.cidrs = List.of("0.0.0.0/0");
    gw.snat.add(new NodeGatewayState.Snat(SECOND_IP, false, List.of("198.19.3.11")));
    var d = DataplaneSettings.defaults("eth0");
    var ranged = new DataplaneSettings(d.uplink(), d.tunnelDevice(), d.tunnelPort(), d.markMask(), d.tableBase(),
        d.rulePriority(), 1, SnatPorts.parse("20000-20099"));
    KernelPlan plan = Renderer.render(Map.of("payments", gw), ranged);
    assertThat(plan.rules().get(Hook.NAT_POSTROUTING)).anyMatch(r -> r.contains(SECOND_IP + ":20000-20099"));
    assertThat(plan.translatedTo()).containsExactly(SECOND_IP);
    assertThat(KernelPlan.EMPTY.translatedTo()).isEmpty();
  }

  static int indexOf(List<String> commands, String prefix) {
    for (int i = 0; i < commands.size(); i++) {
      if (commands.get(i).startsWith(prefix)) {
        return i;
      }
    }
    return -1;
  }

  @Test
  void fencingWithNothingHeldRunsNothing() {
    dataplane.fence();
    assertThat(kernel.commands()).isEmpty();
  }
}
