package io.natgate.dataplane;

import static org.assertj.core.api.Assertions.assertThat;

import io.natgate.api.v1alpha1.AllowEntry;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.api.v1alpha1.NodeGatewayState.Snat;
import io.natgate.api.v1alpha1.PortRange;
import io.natgate.api.v1alpha1.Protocol;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

class AllowRulesTest {
  static final DataplaneSettings SETTINGS = DataplaneGoldenTest.SETTINGS;

  @Test
  void portsAreSplitInListsOfFifteenSlotsARangeTakingTwo() {
    List<PortRange> ports = new ArrayList<>();
    IntStream.rangeClosed(1, 14).forEach(p -> ports.add(PortRange.tcp(p)));
    ports.add(new PortRange(Protocol.TCP, 8000, 8080)); // would be slots 15 and 16
    ports.add(PortRange.tcp(9000));
    assertThat(AllowRules.multiport(ports)).containsExactly("1,2,3,4,5,6,7,8,9,10,11,12,13,14", "8000:8080,9000");
    assertThat(AllowRules.multiport(List.of(new PortRange(Protocol.UDP, 53, 53)))).containsExactly("53");
  }

  @Test
  void eachProtocolGetsItsRulesAndEverythingElseIsRefusedFast() {
    var allow = List.of(new AllowEntry("198.51.100.0/24", null, List.of(PortRange.tcp(443),
        new PortRange(Protocol.UDP, 5000, 5010), new PortRange(Protocol.TCP, 8000, 8080))),
        AllowEntry.cidr("0.0.0.0/0", new PortRange(Protocol.SCTP, 9, null)), AllowEntry.fqdn("*.payments.example"));
    String fqdnSet = DestinationSets.fqdn("pay", "*.payments.example");
    assertThat(AllowRules.render("pay", allow, "natgate-s-1", "198.18.0.100", false, DestinationSets.TYPE)).containsExactly(
        "-A NATGATE-ALLOW -d 198.51.100.0/24 -p tcp -m set --match-set natgate-s-1 src -m multiport --dports "
            + "443,8000:8080 -j RETURN",
        "-A NATGATE-ALLOW -d 198.51.100.0/24 -p udp -m set --match-set natgate-s-1 src -m multiport --dports "
            + "5000:5010 -j RETURN",
        "-A NATGATE-ALLOW -p sctp -m set --match-set natgate-s-1 src -m multiport --dports 9 -j RETURN",
        "-A NATGATE-ALLOW -m set --match-set natgate-s-1 src -m set --match-set " + fqdnSet + " src,dst -j RETURN",
        "-A NATGATE-ALLOW -p tcp -m set --match-set natgate-s-1 src -j REJECT --reject-with tcp-reset",
        "-A NATGATE-ALLOW -m set --match-set natgate-s-1 src -j REJECT --reject-with icmp-admin-prohibited");
    assertThat(AllowRules.render("pay", allow, "natgate-s-1", "198.18.0.100", true, DestinationSets.TYPE))
        .contains("-A NATGATE-ALLOW -m set --match-set natgate-s-1 src -j NFLOG --nflog-prefix "
            + "\"natgate-denied 198.18.0.100\" --nflog-group 7400", atIndex(4));
  }

  @Test
  void onAKernelWithOnlyThePortTypeANamesSetCarriesItsPortsAndANameOnEveryPortAllowsNothing() {
    var allow = List.of(AllowEntry.fqdn("api.payments.example", PortRange.tcp(443), new PortRange(Protocol.TCP, 8000,
        8080)), AllowEntry.fqdn("*.payments.example"));
    assertThat(AllowRules.render("pay", allow, "natgate-s-1", "198.18.0.100", false, DestinationSets.PORT_TYPE))
        .containsExactly("-A NATGATE-ALLOW -m set --match-set natgate-s-1 src -m set --match-set "
            + DestinationSets.fqdn("pay", "api.payments.example") + " src,dst,dst -j RETURN",
            "-A NATGATE-ALLOW -p tcp -m set --match-set natgate-s-1 src -j REJECT --reject-with tcp-reset",
            "-A NATGATE-ALLOW -m set --match-set natgate-s-1 src -j REJECT --reject-with icmp-admin-prohibited");
  }

  private static org.assertj.core.data.Index atIndex(int i) {
    return org.assertj.core.data.Index.atIndex(i);
  }

  @Test
  void onlyTheGatewayRoleEnforcesDirectorsAndGatewaysWithoutAListRenderNone() {
    var gateway = DataplaneGoldenTest.withAllowList();
    KernelPlan plan = Renderer.render(gateway, SETTINGS);
    assertThat(plan.rules().get(Hook.FILTER_ALLOW)).hasSize(5); // cidr:80, the name, the log, two refusals
    assertThat(plan.rules().get(Hook.FILTER_FORWARD)).filteredOn(r -> r.endsWith("-j NATGATE-ALLOW")).hasSize(1);
    assertThat(plan.sets().get(DestinationSets.fqdn("payments", "api.payments.example")))
        .isEqualTo(KernelPlan.IpSet.dynamic(DestinationSets.fqdn("payments", "api.payments.example"), "hash:net,net"));

    var director = DataplaneGoldenTest.withAllowList();
    director.get("payments").snat.clear();
    KernelPlan directorPlan = Renderer.render(director, SETTINGS);
    assertThat(directorPlan.rules()).doesNotContainKey(Hook.FILTER_ALLOW);
    assertThat(directorPlan.sets().keySet()).noneMatch(n -> n.startsWith("natgate-f-"));
    assertThat(Renderer.render(DataplaneGoldenTest.node1(), SETTINGS).rules()).doesNotContainKey(Hook.FILTER_ALLOW);
  }

  @Test
  void onAKernelWithoutTheNamesSetTypeNamesMatchNothingAndCidrsStillDo() {
    KernelPlan plan = Renderer.render(DataplaneGoldenTest.withAllowList(), SETTINGS, null);
    assertThat(plan.sets().keySet()).noneMatch(n -> n.startsWith("natgate-f-"));
    assertThat(plan.rules().get(Hook.FILTER_ALLOW)).noneMatch(r -> r.contains("natgate-f-"))
        .anyMatch(r -> r.contains("-d 203.0.113.0/25")).anyMatch(r -> r.contains("REJECT --reject-with tcp-reset"))
        .hasSize(4);
  }

  @Test
  void aStandbyChecksLikeTheHolderAndEachEgressIPItsOwnSources() {
    var spec = DataplaneGoldenTest.withAllowList();
    spec.get("payments").snat.add(new Snat("198.18.0.110", false, List.of("198.19.3.11")));
    KernelPlan plan = Renderer.render(spec, SETTINGS);
    assertThat(plan.rules().get(Hook.FILTER_FORWARD)).filteredOn(r -> r.endsWith("-j NATGATE-ALLOW")).hasSize(2);
    assertThat(plan.rules().get(Hook.FILTER_ALLOW)).hasSize(10);
  }

  @Test
  void theNamesSetsMembersAreNeverTouchedByAnApplyOrARepairButTheSetGoesWithTheGateway() {
    KernelPlan plan = Renderer.render(DataplaneGoldenTest.withAllowList(), SETTINGS);
    String fqdnSet = DestinationSets.fqdn("payments", "api.payments.example");
    Observed after = Observed.after(plan, 1500);
    // What the DNS path added meanwhile, as a repair finds it in the kernel.
    Map<String, Set<String>> sets = new java.util.HashMap<>(after.sets());
    sets.put(fqdnSet, new HashSet<>(Set.of("198.19.1.11,203.0.113.200")));
    var found = new Observed(after.chains(), after.jumps(), sets, after.held(), after.uplinkAddresses(), after.routes(),
        after.markRules(), after.tunnel(), 1500, after.sysctls());
    assertThat(Changes.between(found, plan, SETTINGS).isEmpty()).isTrue();

    var noList = DataplaneGoldenTest.withAllowList();
    noList.get("payments").allow = null;
    Changes off = Changes.between(found, Renderer.render(noList, SETTINGS), SETTINGS);
    assertThat(off.ipsetAfter()).contains("destroy " + fqdnSet + "\n");
    assertThat(off.ipsetBefore()).doesNotContain(fqdnSet);
    assertThat(Changes.between(found, KernelPlan.EMPTY, SETTINGS).ipsetAfter()).contains("destroy " + fqdnSet + "\n");
  }

  @Test
  void oneHundredTwentyEightEntriesRenderOneRuleEachWhatever() {
    var spec = DataplaneGoldenTest.withAllowList();
    List<AllowEntry> many = new ArrayList<>();
    IntStream.range(0, 128).forEach(i -> many.add(AllowEntry.cidr("198.51." + i + ".0/24", PortRange.tcp(443))));
    NodeGatewayState payments = spec.get("payments");
    payments.allow = many;
    assertThat(Renderer.render(spec, SETTINGS).rules().get(Hook.FILTER_ALLOW)).hasSize(128 + 3);
  }
}
