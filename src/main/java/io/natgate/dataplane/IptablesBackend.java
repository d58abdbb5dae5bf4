package io.natgate.dataplane;

import java.util.Arrays;
import java.util.List;

/**
 * The two backends of iptables 1.8+: {@code nft} writes the kernel's nf_tables, {@code legacy} its older x_tables.
 * Both are active at once, each with tables of its own, so natgate's chains go where the node's kubelet, kube-proxy
 * and CNI keep theirs: across backends the order of rules is not natgate's to set (a SNAT in one backend's nat table
 * and a MASQUERADE in the other's: the table created last translated every connection in src/tools/iptables/
 * mixed-backends.sh), and {@code iptables-save} of one does not show the other's rules.
 *
 * <p>The agent decides once, at its start ({@link #detect}), as kube-proxy's wrapper does at its own start: a node
 * that changes backends restarts kube-proxy (in practice, reboots), and the agent follows at its next start. Whenever
 * the agent looks at the kernel (first apply, each repair, uninstall) it also removes any of natgate's chains from
 * the other backend once its own are applied ({@link Kernel#removeChains}): what a run that chose differently left.
 */
public enum IptablesBackend {
  NFT("iptables-nft"),
  LEGACY("iptables-legacy");

  /**
   * Chains that kubelet (1.17 and later) creates in the backend it uses, so that containers can tell which one the
   * node uses; kube-proxy's iptables wrapper (kubernetes-sigs/iptables-wrappers) looks for them.
   */
  static final List<String> KUBELET_CHAINS = List.of("KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY");

  private final String command;

  IptablesBackend(String command) {
    this.command = command;
  }

  public String save() {
    return command + "-save";
  }

  public String restore() {
    return command + "-restore";
  }

  public IptablesBackend other() {
    return this == NFT ? LEGACY : NFT;
  }

  /** The backend to use and why (for the agent's log). */
  public record Choice(IptablesBackend backend, String reason) {
    @Override
    public String toString() {
      return backend.command + ": " + reason;
    }
  }

  /**
   * The backend the node's rules are in, from each backend's {@code iptables-save} output (null: that backend could
   * not be read here). The order is the one of kube-proxy's iptables wrapper: kubelet's chains in nft, then kubelet's
   * chains in legacy, else nft. Before kubelet created those chains the wrapper compared the number of rules in each
   * backend; that is kept as the step before the default, for nodes without a kubelet's chains (natgate's own rules
   * are not counted, so that a choice never feeds itself).
   */
  public static Choice choose(String nftSave, String legacySave) {
    int nft = foreignRules(nftSave);
    int legacy = foreignRules(legacySave);
    String counts = " (rules that are not natgate's: nft " + count(nftSave, nft) + ", legacy "
        + count(legacySave, legacy) + ")";
    if (hasKubeletChains(nftSave)) {
      return new Choice(NFT, "kubelet's chains are in iptables-nft" + counts);
    }
    if (hasKubeletChains(legacySave)) {
      return new Choice(LEGACY, "kubelet's chains are in iptables-legacy" + counts);
    }
    if (legacy > nft) {
      return new Choice(LEGACY, "no kubelet chain in either backend; more rules in iptables-legacy" + counts);
    }
    if (nft > 0) {
      return new Choice(NFT, "no kubelet chain in either backend; more rules in iptables-nft" + counts);
    }
    if (nftSave == null && legacySave != null) {
      return new Choice(LEGACY, "no rules anywhere, and only iptables-legacy can be read here" + counts);
    }
    return new Choice(NFT, "no rules in either backend: nft, the default" + counts);
  }

  /** Reads both backends through {@code kernel} and {@link #choose}s; a backend that cannot be read counts as absent. */
  public static Choice detect(Kernel kernel) {
    return choose(readOrNull(kernel, NFT), readOrNull(kernel, LEGACY));
  }

  private static String readOrNull(Kernel kernel, IptablesBackend backend) {
    try {
      return kernel.run(null, backend.save());
    } catch (Kernel.KernelException e) {
      return null;
    }
  }

  private static String count(String save, int rules) {
    return save == null ? "cannot be read" : String.valueOf(rules);
  }

  /** Declared in any table, as the wrapper looks for them (kubelet creates them in mangle, nat and filter). */
  static boolean hasKubeletChains(String save) {
    return save != null && save.lines().anyMatch(l -> KUBELET_CHAINS.stream().anyMatch(c -> l.startsWith(":" + c + " ")));
  }

  /** The rules ({@code -A} lines) that are not natgate's: neither in one of our chains nor a jump to one. */
  static int foreignRules(String save) {
    if (save == null) {
      return 0;
    }
    return (int) save.lines().filter(l -> l.startsWith("-A ")).filter(l -> Arrays.stream(Hook.values())
        .noneMatch(h -> l.startsWith("-A " + h.chain + " ") || l.endsWith(" -j " + h.chain))).count();
  }
}
