package io.natgate.dataplane;

import static io.natgate.dataplane.IptablesBackend.LEGACY;
import static io.natgate.dataplane.IptablesBackend.NFT;
import static org.assertj.core.api.Assertions.assertThat;

import io.natgate.testing.FakeKernel;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Which iptables backend the agent writes, from what each backend's iptables-save shows. */
class IptablesBackendTest {
  /** What kubelet leaves in the backend it uses (its chains declared in mangle, nat and filter) and a rule. */
  static final String KUBELET = """
      *mangle
      :PREROUTING ACCEPT [0:0]
      :KUBE-IPTABLES-HINT - [0:0]
      :KUBE-KUBELET-CANARY - [0:0]
      COMMIT
      *nat
      :POSTROUTING ACCEPT [0:0]
      :KUBE-KUBELET-CANARY - [0:0]
      :KUBE-POSTROUTING - [0:0]
      -A POSTROUTING -j KUBE-POSTROUTING
      COMMIT
      """;
  /** kube-proxy's rules without kubelet's chains (a kubelet older than 1.17, or another component). */
  static final String THREE_RULES = """
      *nat
      :POSTROUTING ACCEPT [0:0]
      :KUBE-POSTROUTING - [0:0]
      -A POSTROUTING -j KUBE-POSTROUTING
      -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
      -A KUBE-POSTROUTING -j MASQUERADE
      COMMIT
      """;
  static final String ONE_RULE = """
      *filter
      :INPUT ACCEPT [0:0]
      -A INPUT -i lo -j ACCEPT
      COMMIT
      """;
  /** natgate's own chains, as a run of the agent that chose this backend left them. */
  static final String NATGATE = """
      *nat
      :POSTROUTING ACCEPT [0:0]
      :NATGATE-POSTROUTING - [0:0]
      -A POSTROUTING -j NATGATE-POSTROUTING
      -A NATGATE-POSTROUTING -s 198.19.1.11/32 -j SNAT --to-source 198.18.0.120
      -A NATGATE-POSTROUTING -s 198.19.1.12/32 -j SNAT --to-source 198.18.0.120
      COMMIT
      *filter
      :FORWARD ACCEPT [0:0]
      :NATGATE-FORWARD - [0:0]
      -A FORWARD -j NATGATE-FORWARD
      -A NATGATE-FORWARD -m mark --mark 0x100/0x100 -j DROP
      COMMIT
      """;
  static final String EMPTY = "";

  @Test
  void kubeletsChainsDecideAndNftIsLookedAtFirst() {
    assertThat(IptablesBackend.choose(KUBELET, EMPTY).backend()).isEqualTo(NFT);
    assertThat(IptablesBackend.choose(EMPTY, KUBELET).backend()).isEqualTo(LEGACY);
    // more rules in nft (a firewall of the host's own) do not outweigh kubelet's chains in legacy
    assertThat(IptablesBackend.choose(THREE_RULES + ONE_RULE, KUBELET).backend()).isEqualTo(LEGACY);
    // both (a node half-way through a switch): nft, as kube-proxy's wrapper
    assertThat(IptablesBackend.choose(KUBELET, KUBELET).backend()).isEqualTo(NFT);
    assertThat(IptablesBackend.choose(EMPTY, KUBELET).reason()).startsWith("kubelet's chains are in iptables-legacy");
  }

  @Test
  void withoutKubeletsChainsTheBackendWithMoreRulesThatAreNotOurs() {
    assertThat(IptablesBackend.choose(ONE_RULE, THREE_RULES).backend()).isEqualTo(LEGACY);
    assertThat(IptablesBackend.choose(THREE_RULES, ONE_RULE).backend()).isEqualTo(NFT);
    assertThat(IptablesBackend.choose(THREE_RULES, THREE_RULES).backend()).as("a tie").isEqualTo(NFT);
    // natgate's own rules (4 here) do not count: a choice made once does not keep itself
    assertThat(IptablesBackend.choose(ONE_RULE, NATGATE).backend()).isEqualTo(NFT);
    assertThat(IptablesBackend.choose(ONE_RULE, NATGATE).reason())
        .isEqualTo("no kubelet chain in either backend; more rules in iptables-nft (rules that are not natgate's: "
            + "nft 1, legacy 0)");
    assertThat(IptablesBackend.foreignRules(NATGATE + THREE_RULES)).isEqualTo(3);
  }

  @Test
  void nothingAnywhereIsNftAndABackendThatCannotBeReadHoldsNothing() {
    assertThat(IptablesBackend.choose(EMPTY, EMPTY))
        .isEqualTo(new IptablesBackend.Choice(NFT, "no rules in either backend: nft, the default (rules that are not "
            + "natgate's: nft 0, legacy 0)"));
    assertThat(IptablesBackend.choose(EMPTY, null).backend()).isEqualTo(NFT);
    assertThat(IptablesBackend.choose(null, EMPTY).backend()).as("only legacy works here").isEqualTo(LEGACY);
    assertThat(IptablesBackend.choose(null, null).backend()).isEqualTo(NFT);
    assertThat(IptablesBackend.choose(null, THREE_RULES).reason()).contains("nft cannot be read, legacy 3");
  }

  @Test
  void aRuleNamingKubeletsChainIsNotItsDeclaration() {
    assertThat(IptablesBackend.hasKubeletChains("*mangle\n-A OUTPUT -j KUBE-IPTABLES-HINT\nCOMMIT\n")).isFalse();
    assertThat(IptablesBackend.hasKubeletChains("*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n")).isTrue();
  }

  @Test
  void ourChainsFoundInABackendAreRemovedWithTheirJumpsAndNothingElse() {
    assertThat(Changes.iptables(Observed.iptables(KUBELET + NATGATE), KernelPlan.EMPTY)).containsExactly("""
        *filter
        :NATGATE-FORWARD - [0:0]
        -D FORWARD -j NATGATE-FORWARD
        -X NATGATE-FORWARD
        COMMIT
        """, """
        *nat
        :NATGATE-POSTROUTING - [0:0]
        -D POSTROUTING -j NATGATE-POSTROUTING
        -X NATGATE-POSTROUTING
        COMMIT
        """);
    assertThat(Changes.iptables(Observed.iptables(KUBELET), KernelPlan.EMPTY)).isEmpty();
  }

  @Test
  void theDataplaneWritesOnlyItsBackendAndReadsTheOtherOnlyWhenItLooksAtTheKernel() {
    for (IptablesBackend backend : IptablesBackend.values()) {
      var kernel = new FakeKernel("eth0");
      var dataplane = new NodeDataplane(kernel, DataplaneSettings.defaults("eth0"), backend);
      dataplane.apply(FencingTest.holding(List.of("198.18.0.100")));
      assertThat(kernel.commandsWith(backend.restore())).as("%s restores", backend).hasSize(2); // nat, filter+mangle
      assertThat(kernel.commandsWith(backend.other().restore())).as("%s: the other backend's restores", backend)
          .isEmpty();
      assertThat(kernel.commandsWith(backend.other().save())).as("the other backend read at the first apply")
          .hasSize(1);

      dataplane.apply(FencingTest.holding(List.of("198.18.0.100", "198.18.0.101"))); // trusts what it applied
      assertThat(kernel.commandsWith(backend.other().save())).hasSize(1);
      dataplane.repair();
      assertThat(kernel.commandsWith(backend.other().save())).hasSize(2);
      assertThat(kernel.commandsWith(backend.other().restore())).isEmpty();
      assertThat(kernel.commandsWith("iptables-save").size() + kernel.commandsWith("iptables-restore").size())
          .as("the image's default alternative is never run").isZero();
    }
  }
}
