package io.natgate.dataplane;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.natgate.api.v1alpha1.AllowEntry;
import io.natgate.api.v1alpha1.ConnectionLogState;
import io.natgate.api.v1alpha1.PortRange;
import io.natgate.api.v1alpha1.FailurePolicy;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.api.v1alpha1.NodeGatewayState.Snat;
import io.natgate.api.v1alpha1.NodeGatewayState.Steer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * The exact text natgate feeds to ip, ipset and iptables-restore, against files under src/test/resources/golden
 * (review a diff there like code; {@code -Dnatgate.golden.update=true} rewrites them).
 */
class DataplaneGoldenTest {
  static final DataplaneSettings SETTINGS = new DataplaneSettings("eth0", "natgate0", 4790, 0x0ff00000, 7400, 7400, 2);
  static final Observed NOTHING = Observed.parse("", "", "[]", "[{\"ifname\":\"eth0\",\"mtu\":1500}]", "", "[]",
      SETTINGS, Map.of());

  /** node-1: gateway of payments, director for partners (gateway elsewhere), billing (no gateway, Drop), audit (Allow). */
  static Map<String, NodeGatewayState> node1() {
    var spec = new TreeMap<String, NodeGatewayState>();
    var payments = state(FailurePolicy.Drop, List.of("0.0.0.0/0"), List.of("198.19.0.0/16"));
    payments.snat.add(new Snat("198.18.0.100", true, List.of("198.19.1.11", "198.19.2.11")));
    spec.put("payments", payments);
    var partners = state(FailurePolicy.Drop, List.of("203.0.113.0/24"), List.of("198.19.0.0/16", "203.0.113.128/25"));
    partners.steer.add(new Steer("198.18.0.101", "node-2", "198.18.0.12", List.of("198.19.1.12")));
    spec.put("partners", partners);
    var billing = state(FailurePolicy.Drop, List.of("0.0.0.0/0"), List.of("198.19.0.0/16"));
    billing.steer.add(new Steer("198.18.0.102", null, null, List.of("198.19.1.13")));
    spec.put("billing", billing);
    var audit = state(FailurePolicy.Allow, List.of("0.0.0.0/0"), List.of("198.19.0.0/16"));
    audit.steer.add(new Steer("198.18.0.103", null, null, List.of("198.19.1.14")));
    spec.put("audit", audit);
    return spec;
  }

  static NodeGatewayState state(FailurePolicy policy, List<String> cidrs, List<String> excluded) {
    var s = new NodeGatewayState();
    s.failurePolicy = policy;
    s.cidrs = cidrs;
    s.excludedCidrs = excluded;
    return s;
  }

  @Test
  void fullApplyOnAnEmptyNode() throws IOException {
    golden("full-apply.txt", Changes.between(NOTHING, Renderer.render(node1(), SETTINGS), SETTINGS));
  }

  @Test
  void onePodMoreIsOneSetLineAndNothingElse() throws IOException {
    KernelPlan before = Renderer.render(node1(), SETTINGS);
    var spec = node1();
    spec.get("payments").snat.get(0).sources = List.of("198.19.1.11", "198.19.2.11", "198.19.3.11");
    golden("one-pod-added.txt", Changes.between(Observed.after(before, 1500), Renderer.render(spec, SETTINGS), SETTINGS));
  }

  @Test
  void takeoverAndRelease() throws IOException {
    KernelPlan gateway = Renderer.render(node1(), SETTINGS);
    var spec = node1();
    // payments' IP moved to node-2: this node now steers its local pod there instead of SNATing.
    spec.get("payments").snat.clear();
    spec.get("payments").steer.add(new Steer("198.18.0.100", "node-2", "198.18.0.12", List.of("198.19.1.11")));
    golden("release-to-node-2.txt", Changes.between(Observed.after(gateway, 1500), Renderer.render(spec, SETTINGS),
        SETTINGS));
  }

  /**
   * A pod of partners steered to another egress IP (one added to the gateway spreads the pods anew): it is added to
   * the new IP's set, that set's rule and route come in, and only then does it leave the old set. Removed first, it
   * would be in no set that a rule uses, and its new connections would leave with the node's own address.
   */
  @Test
  void aPodSteeredToAnotherEgressIPLeavesItsOldSetOnlyAfterTheRulesOfItsNewOne() throws IOException {
    var before = node1();
    before.get("partners").steer.set(0, new Steer("198.18.0.101", "node-2", "198.18.0.12",
        List.of("198.19.1.12", "198.19.1.15")));
    var after = node1();
    after.get("partners").steer.add(new Steer("198.18.0.104", "node-3", "198.18.0.13", List.of("198.19.1.15")));
    Changes c = Changes.between(Observed.after(Renderer.render(before, SETTINGS), 1500), Renderer.render(after, SETTINGS),
        SETTINGS);
    golden("pod-steered-elsewhere.txt", c);
    assertThat(c.ipsetBefore()).contains(" 198.19.1.15\n").doesNotContain("del ");
    assertThat(c.ipsetAfter()).containsPattern("del natgate-d-[0-9a-f]+ 198.19.1.15\n");
  }

  /**
   * payments' IP taken over by node-2, the standby of a group of three (the Kind scale-up's leak): this node keeps the
   * standby SNAT the operator wrote (its sources are the operator's list) and steers its own pods to node-2. Its pod
   * 198.19.1.15, which natgate-cni put into the SNAT set at ADD and the operator does not list yet, moves from that set
   * to the steer set. It must stay in the SNAT set until the rules that steer it are in: removed in step 3, it was in
   * neither set until step 4 (seconds on a loaded node) and left as the node, through the CNI's masquerade.
   */
  @Test
  void aPodMovingFromTheSnatSetToASteerSetLeavesTheSnatSetOnlyOnceTheRulesThatSteerItAreIn() throws IOException {
    var holding = node1();
    holding.get("payments").snat.get(0).sources = List.of("198.19.1.11", "198.19.1.15", "198.19.2.11");
    var standby = node1();
    var payments = standby.get("payments");
    payments.snat.clear();
    payments.steer.add(new Steer("198.18.0.100", "node-2", "198.18.0.12", List.of("198.19.1.11", "198.19.1.15")));
    payments.peers = new NodeGatewayState.Peers();
    payments.peers.members = List.of(new NodeGatewayState.Member("node-1", "198.18.0.11"),
        new NodeGatewayState.Member("node-2", "198.18.0.12"), new NodeGatewayState.Member("node-3", "198.18.0.13"));
    payments.peers.successions = List.of(new NodeGatewayState.Succession("198.18.0.100", "node-2", List.of("node-1")));
    payments.peers.standby = List.of(new Snat("198.18.0.100", true, List.of("198.19.1.11", "198.19.2.11")));
    standby.put("payments", io.natgate.peers.HoldDecision.withHolding(payments, java.util.Set.of(), "node-1"));
    Changes c = Changes.between(Observed.after(Renderer.render(holding, SETTINGS), 1500),
        Renderer.render(standby, SETTINGS), SETTINGS);
    golden("holder-to-standby.txt", c);
    String snatSet = "natgate-s-" + Renderer.id("payments/198.18.0.100");
    String steerSet = "natgate-d-" + Renderer.id("payments/198.18.0.100");
    assertThat(c.ipsetBefore()).as("step 3").contains("add " + steerSet + " 198.19.1.15\n").doesNotContain("del ");
    assertThat(c.iptables()).as("step 4").anySatisfy(run -> assertThat(run).contains("--match-set " + steerSet
        + " src"));
    assertThat(c.ipsetAfter()).as("step 6").contains("del " + snatSet + " 198.19.1.15\n");
  }

  /**
   * A planned move of payments' IP from node-2 to this node (node-1): while node-2 releases it, what arrives here for
   * the IP that no connection here knows goes to node-2; once the move is over, those rules go. node-2, the
   * releasing node, renders none.
   */
  @Test
  void aPlannedMoveSendsWhatTheTakingNodeDoesNotKnowToTheReleasingNodeUntilItIsOver() throws IOException {
    KernelPlan moving = Renderer.render(plannedMove("node-1", "node-2"), SETTINGS);
    KernelPlan moved = Renderer.render(plannedMove("node-1", null), SETTINGS);
    golden("planned-move-taking.txt", Changes.between(Observed.after(moved, 1500), moving, SETTINGS));
    golden("planned-move-over.txt", Changes.between(Observed.after(moving, 1500), moved, SETTINGS));
    assertThat(Renderer.render(plannedMove("node-2", "node-2"), SETTINGS).rules().get(Hook.MANGLE_PREROUTING))
        .as("the releasing node forwards nothing").noneMatch(r -> r.contains("TEE") || r.contains("-d 198.18.0.100"));
  }

  /**
   * node-1's agent stops for a restart while it holds payments' IP in a group of three, once node-3 has the IP too: it
   * releases the IP, then steers the IP's sources (its own pod 198.19.1.11 among them) into the tunnel toward it; the
   * SNAT set stays, as a standby's. Its pod is never in neither set, and the tunnel follows the IP to node-3. What
   * arrives for the IP that no connection knows is dropped first: node-3 forwards such packets here.
   */
  @Test
  void aHolderStoppingForARestartReleasesItsIpAndSteersItsPodsAfterIt() throws IOException {
    Map<String, NodeGatewayState> holding = plannedMove("node-1", null);
    Map<String, NodeGatewayState> leaving = new TreeMap<>();
    holding.forEach((gateway, part) -> leaving.put(gateway, io.natgate.peers.HoldDecision.leaving(part, "node-1")));
    KernelPlan left = Renderer.handingOver(Renderer.render(leaving, SETTINGS), java.util.Set.of("198.18.0.100"),
        SETTINGS);
    Changes c = Changes.between(Observed.after(Renderer.render(holding, SETTINGS), 1500), left, SETTINGS);
    golden("holder-leaving.txt", c);
    String snatSet = "natgate-s-" + Renderer.id("payments/198.18.0.100");
    String steerSet = "natgate-d-" + Renderer.id("payments/198.18.0.100");
    assertThat(c.ipsetBefore()).contains("add " + steerSet + " 198.19.1.11\n").doesNotContain(snatSet);
    assertThat(c.release()).as("step 1").contains("address flush dev eth0 to 198.18.0.100/32");
    assertThat(c.ipsetAfter()).doesNotContain(snatSet);
    assertThat(left.held()).isEmpty();
    assertThat(left.rules().get(Hook.MANGLE_PREROUTING).subList(0, 2)).as("first, and nothing forwarded on")
        .allMatch(r -> r.contains("-d 198.18.0.100/32 -i eth0") && r.endsWith("--ctstate INVALID,NEW -j DROP"));
    assertThat(left.rules().get(Hook.MANGLE_PREROUTING)).noneMatch(r -> r.contains("TEE"));
    assertThat(Renderer.handingOver(left, java.util.Set.of(), SETTINGS)).as("nothing handed over").isSameAs(left);
    assertThat(leaving.get("partners")).as("other gateways as they were").isEqualTo(holding.get("partners"));
  }

  /**
   * node-3 takes payments' IP over from node-1, whose agent stopped and handed it over: node-3 renders what a planned
   * move away from node-1 renders, the forwarding of what it does not know to node-1.
   */
  @Test
  void theNodeTakingAnIpAStoppingAgentHandedOverForwardsWhatItDoesNotKnowAsAPlannedMoveDoes() {
    Map<String, NodeGatewayState> handedOver = plannedMove("node-3", null, Map.of("198.18.0.100", "node-1"));
    KernelPlan taking = Renderer.render(handedOver, SETTINGS);
    assertThat(taking).isEqualTo(Renderer.render(plannedMove("node-3", "node-1"), SETTINGS));
    assertThat(taking.rules().get(Hook.MANGLE_PREROUTING)).contains("-A " + Hook.MANGLE_PREROUTING.chain
        + " -d 198.18.0.100/32 -i eth0 -p tcp -m conntrack --ctstate INVALID,NEW -j TEE --gateway 198.18.0.11");
  }

  /** node-1's state, payments in a group of three (node-1 holds its IP), as rendered on node {@code self}. */
  static Map<String, NodeGatewayState> plannedMove(String self, String releasing) {
    return plannedMove(self, releasing, Map.of());
  }

  /** The same, {@code handedOver} by stopping agents (egress IP to node). */
  static Map<String, NodeGatewayState> plannedMove(String self, String releasing, Map<String, String> handedOver) {
    var spec = node1();
    var payments = spec.get("payments");
    payments.peers = new NodeGatewayState.Peers();
    payments.peers.members = List.of(new NodeGatewayState.Member("node-1", "198.18.0.11"),
        new NodeGatewayState.Member("node-2", "198.18.0.12"), new NodeGatewayState.Member("node-3", "198.18.0.13"));
    payments.peers.successions = List.of(
        new NodeGatewayState.Succession("198.18.0.100", "node-1", List.of("node-3"), releasing));
    spec.put("payments", io.natgate.peers.HoldDecision.withHolding(payments, java.util.Set.of("198.18.0.100"), self,
        handedOver));
    return spec;
  }

  @Test
  void turningTheConnectionLogOnMarksTheGatewaysConnectionsForTheListener() throws IOException {
    KernelPlan before = Renderer.render(node1(), SETTINGS);
    var spec = node1();
    spec.get("payments").connectionLog = new ConnectionLogState(Map.of("198.19.1.11", "shop/api-1"));
    KernelPlan logged = Renderer.render(spec, SETTINGS);
    golden("connection-log-on.txt", Changes.between(Observed.after(before, 1500), logged, SETTINGS));
    assertThat(Changes.between(Observed.after(logged, 1500), logged, SETTINGS).isEmpty()).isTrue();
  }

  /** payments with the lab's allow list: a CIDR on one port and a DNS name on any port, the log on. */
  static Map<String, NodeGatewayState> withAllowList() {
    var spec = node1();
    spec.get("payments").connectionLog = new ConnectionLogState(Map.of("198.19.1.11", "shop/api-1"));
    spec.get("payments").allow = List.of(AllowEntry.cidr("203.0.113.0/25", PortRange.tcp(80)),
        AllowEntry.fqdn("api.payments.example"));
    return spec;
  }

  @Test
  void anAllowListChecksNewConnectionsAndCreatesTheNamesSets() throws IOException {
    KernelPlan before = Renderer.render(node1(), SETTINGS);
    KernelPlan allowed = Renderer.render(withAllowList(), SETTINGS);
    golden("allow-list-on.txt", Changes.between(Observed.after(before, 1500), allowed, SETTINGS));
    golden("allow-list-off.txt", Changes.between(Observed.after(allowed, 1500), before, SETTINGS));
  }

  /** Uninstall: everything goes, the base too. */
  @Test
  void uninstallingRemovesEverything() throws IOException {
    KernelPlan plan = Renderer.render(node1(), SETTINGS);
    golden("remove-all.txt", Changes.between(Observed.after(plan, 1500), KernelPlan.EMPTY, SETTINGS));
    golden("uninstall-base.txt", Changes.between(Observed.after(Renderer.base(SETTINGS), 1500), KernelPlan.EMPTY,
        SETTINGS));
  }

  /**
   * The base an agent with no gateway keeps: the tunnel, the chains and their jumps, and only rules that match what
   * natgate marked (or whose connection it marked) or tunnelled: none of it matches a packet on a node with no
   * gateway, whose masquerade decides as without natgate (DataplaneLabIT counts the packets).
   */
  @Test
  void aNodeWithNoGatewayKeepsTheBaseWhoseRulesMatchOnlyWhatNatgateMarkedOrTunnelled() throws IOException {
    KernelPlan base = Renderer.base(SETTINGS);
    golden("base.txt", Changes.between(NOTHING, base, SETTINGS));
    assertThat(Renderer.render(Map.of(), SETTINGS)).isEqualTo(base);
    assertThat(base.tunnel()).isTrue();
    assertThat(base.sets()).isEmpty();
    assertThat(base.held()).isEmpty();
    assertThat(base.routes()).isEmpty();
    assertThat(base.markRules()).isEmpty();
    assertThat(base.rules()).containsOnlyKeys(Hook.MANGLE_PREROUTING, Hook.MANGLE_FORWARD, Hook.NAT_POSTROUTING,
        Hook.FILTER_FORWARD);
    assertThat(base.rules().get(Hook.MANGLE_PREROUTING)).as("nothing marked").noneMatch(r -> r.contains("-j MARK"));
    assertThat(base.rules().values().stream().flatMap(List::stream)).as("each only for what natgate marked or tunnelled")
        .allSatisfy(rule -> assertThat(rule).containsAnyOf("-o natgate0 ", "-i natgate0 ",
            "-m mark ! --mark 0x0/0xff00000", "-m connmark ! --mark 0x0/0xff00000"));
    assertThat(Changes.between(Observed.after(base, 1500), base, SETTINGS).isEmpty()).isTrue();
  }

  /** The last gateway gone (its node state deleted) while the agent runs: all of it goes but the base. */
  @Test
  void theLastGatewayGoneLeavesTheBase() throws IOException {
    KernelPlan plan = Renderer.render(node1(), SETTINGS);
    Changes c = Changes.between(Observed.after(plan, 1500), Renderer.render(Map.of(), SETTINGS), SETTINGS);
    golden("last-gateway-gone.txt", c);
    assertThat(c.ipAfter()).doesNotContain("link del");
    assertThat(c.ipsetAfter()).doesNotContain("destroy " + DataplaneSettings.HELD_SET);
    assertThat(String.join("", c.iptables())).doesNotContain("-X ").doesNotContain("-D ");
  }

  /**
   * A director's first steered pod on a node with the base: its set, its mark rule and route, and its rules; no
   * tunnel, no kernel setting, no jump. From nothing it is all of those too (full-apply.txt shows the whole).
   */
  @Test
  void aDirectorsFirstSteeredPodOnTheBaseAddsOnlyWhatItsGatewayNeeds() throws IOException {
    var spec = new TreeMap<String, NodeGatewayState>();
    spec.put("partners", node1().get("partners"));
    KernelPlan first = Renderer.render(spec, SETTINGS);
    Changes fromBase = Changes.between(Observed.after(Renderer.base(SETTINGS), 1500), first, SETTINGS);
    golden("first-steered-pod.txt", fromBase);
    Changes fromNothing = Changes.between(NOTHING, first, SETTINGS);
    assertThat(fromBase.ipBefore()).doesNotContain("link add").contains("rule add", "route replace");
    assertThat(fromBase.sysctls()).isEmpty();
    assertThat(fromNothing.sysctls()).isNotEmpty();
    assertThat(fromBase.iptables()).as("one run: no jump, nat unchanged").hasSize(1);
    assertThat(fromBase.iptables().get(0)).doesNotContain("-I ", "*nat");
  }

  @Test
  void applyingTheSamePlanAgainDoesNothing() {
    KernelPlan plan = Renderer.render(node1(), SETTINGS);
    assertThat(Changes.between(Observed.after(plan, 1500), plan, SETTINGS).isEmpty()).isTrue();
    assertThat(Changes.between(Observed.after(KernelPlan.EMPTY, 1500), KernelPlan.EMPTY, SETTINGS).isEmpty()).isTrue();
  }

  @Test
  void aKernelSettingSomeoneChangedIsSetAgainAndNothingElseIsTouched() {
    KernelPlan plan = Renderer.render(node1(), SETTINGS);
    Observed after = Observed.after(plan, 1500);
    var drifted = new Observed(after.chains(), after.jumps(), after.sets(), after.held(), after.uplinkAddresses(),
        after.routes(), after.markRules(), after.tunnel(), 1500, Map.of("net.ipv4.conf.natgate0.rp_filter", "1"));
    Changes c = Changes.between(drifted, plan, SETTINGS);
    assertThat(c.sysctls()).containsExactly(Map.entry("net.ipv4.conf.natgate0.rp_filter", "2"));
    assertThat(c.ipBefore()).isEmpty();
    assertThat(c.isEmpty()).isFalse();
  }

  @Test
  void aJumpThatIsNoLongerFirstIsMovedBackWithoutTouchingTheChain() {
    KernelPlan plan = Renderer.render(node1(), SETTINGS);
    Observed after = Observed.after(plan, 1500);
    var jumps = new java.util.EnumMap<>(after.jumps());
    jumps.put(Hook.NAT_POSTROUTING, List.of(1, 3)); // someone inserted ahead of us, and a duplicate
    var drifted = new Observed(after.chains(), jumps, after.sets(), after.held(), after.uplinkAddresses(),
        after.routes(), after.markRules(), after.tunnel(), 1500, after.sysctls());
    assertThat(Changes.between(drifted, plan, SETTINGS).iptables()).containsExactly("""
        *nat
        -D POSTROUTING -j NATGATE-POSTROUTING
        -D POSTROUTING -j NATGATE-POSTROUTING
        -I POSTROUTING 1 -j NATGATE-POSTROUTING
        COMMIT
        """);
  }

  @Test
  void observedKernelOutputsParseToTheSameShape() {
    String save = """
        *nat
        :POSTROUTING ACCEPT [0:0]
        :LAB-CNI-MASQ - [0:0]
        :NATGATE-POSTROUTING - [0:0]
        -A POSTROUTING -j NATGATE-POSTROUTING
        -A POSTROUTING -j LAB-CNI-MASQ
        -A NATGATE-POSTROUTING -m mark ! --mark 0x0/0xff00000 -j ACCEPT
        COMMIT
        *filter
        :FORWARD ACCEPT [0:0]
        -A FORWARD -j KUBE-FORWARD
        -A FORWARD -j NATGATE-FORWARD
        COMMIT
        """;
    String sets = """
        create natgate-held hash:ip family inet hashsize 1024 maxelem 1048576 bucketsize 12 initval 0x1
        add natgate-held 198.18.0.100
        create natgate-s-1 hash:ip family inet hashsize 1024 maxelem 1048576 bucketsize 12 initval 0x2
        add natgate-s-1 198.19.1.11
        create KUBE-X hash:ip family inet
        add KUBE-X 10.0.0.1
        """;
    String routes = """
        default encap ip id 7400 src 0.0.0.0 dst 198.18.0.101 ttl 0 tos 0 dev natgate0 table 7401 proto 78 scope link
        throw 198.18.0.101 table 7401 proto 78
        """;
    String rules = "[{\"priority\":7400,\"src\":\"all\",\"fwmark\":\"0x100000\",\"fwmask\":\"0xff00000\",\"table\":\"7401\"},"
        + "{\"priority\":32766,\"src\":\"all\",\"table\":\"main\"}]";
    String addr = "[{\"ifname\":\"eth0\",\"addr_info\":[{\"family\":\"inet\",\"local\":\"198.18.0.11\",\"prefixlen\":24},"
        + "{\"family\":\"inet\",\"local\":\"198.18.0.100\",\"prefixlen\":32}]}]";
    String links = "[{\"ifname\":\"eth0\",\"mtu\":9000},{\"ifname\":\"natgate0\",\"mtu\":8950}]";
    Observed o = Observed.parse(save, sets, addr, links, routes, rules, SETTINGS,
        Map.of("net.ipv4.conf.natgate0.rp_filter", "1"));
    assertThat(o.chains()).containsOnlyKeys(Hook.NAT_POSTROUTING);
    assertThat(o.jumps()).containsEntry(Hook.NAT_POSTROUTING, List.of(0)).containsEntry(Hook.FILTER_FORWARD, List.of(1));
    assertThat(o.sets()).containsOnlyKeys("natgate-s-1");
    assertThat(o.held()).containsExactly("198.18.0.100");
    assertThat(o.uplinkAddresses()).containsExactly("198.18.0.100");
    assertThat(o.routes()).containsExactlyInAnyOrder(new KernelPlan.Route(7401, "unicast", "default", "198.18.0.101"),
        new KernelPlan.Route(7401, "throw", "198.18.0.101", null));
    assertThat(o.markRules()).containsExactly(new KernelPlan.MarkRule("0x100000/0xff00000", 7401));
    assertThat(o.tunnel()).isTrue();
    assertThat(o.uplinkMtu()).isEqualTo(9000);
    assertThat(o.sysctls()).containsExactly(Map.entry("net.ipv4.conf.natgate0.rp_filter", "1"));
  }

  @Test
  void aNarrowSnatPortRangeIsRenderedOnTcpAndUdpSnatRulesAheadOfThePortlessOne() {
    var narrow = new DataplaneSettings("eth0", "natgate0", 4790, 0x0ff00000, 7400, 7400, 2, SnatPorts.parse("20000-20099"));
    KernelPlan plan = Renderer.render(node1(), narrow);
    KernelPlan kernelPorts = Renderer.render(node1(), SETTINGS);
    String changes = String.join("\n", Changes.between(Observed.after(kernelPorts, 1500), plan, narrow).iptables());
    assertThat(changes).contains("-o eth0 -p tcp -m set --match-set", "-o eth0 -p udp -m set --match-set")
        .contains("-j SNAT --to-source 198.18.0.100:20000-20099");
    assertThat(changes.lines().filter(l -> l.contains("--to-source 198.18.0.100:20000-20099"))).hasSize(2)
        .allMatch(l -> l.contains(" -p "));
    assertThat(Changes.between(Observed.after(plan, 1500), plan, narrow).isEmpty()).isTrue();
  }

  @Test
  void tooManyTunnelledEgressIPsForTheMarkMaskIsAClearError() {
    var spec = new TreeMap<String, NodeGatewayState>();
    var g = state(FailurePolicy.Drop, List.of("0.0.0.0/0"), List.of());
    IntStream.range(1, 4).forEach(i -> g.steer.add(new Steer("198.18.0." + (100 + i), "node-2", "198.18.0.12",
        List.of("198.19.1." + i))));
    spec.put("many", g);
    var tiny = new DataplaneSettings("eth0", "natgate0", 4790, 0x3, 7400, 7400, 0);
    assertThatThrownBy(() -> Renderer.render(spec, tiny)).hasMessageContaining("steers to 3 egress IPs")
        .hasMessageContaining("room for 2");
  }

  static void golden(String name, Changes c) throws IOException {
    List<String> parts = new ArrayList<>();
    parts.add("# 1. ip -batch - (release)\n" + c.release());
    parts.add("# 2. ip -batch - (tunnel, rules, routes)\n" + c.ipBefore()
        + c.sysctls().entrySet().stream().map(e -> e.getKey() + "=" + e.getValue()).collect(Collectors.joining("\n")));
    parts.add("# 3. ipset -exist restore\n" + c.ipsetBefore());
    for (String run : c.iptables()) {
      parts.add("# 4. iptables-restore --noflush\n" + run);
    }
    parts.add("# 5. ip -batch - (hold), then arping " + c.announce() + "\n" + c.hold());
    parts.add("# 6. ipset -exist restore\n" + c.ipsetAfter());
    parts.add("# 7. ip -batch -\n" + c.ipAfter());
    String text = String.join("\n", parts).replaceAll("\n+#", "\n\n#").strip() + "\n";
    Path file = Path.of("src/test/resources/golden", name);
    if (Boolean.getBoolean("natgate.golden.update") || !Files.exists(file)) {
      Files.writeString(file, text);
    }
    assertThat(text).isEqualTo(Files.readString(file));
  }
}
