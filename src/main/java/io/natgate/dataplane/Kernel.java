package io.natgate.dataplane;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * Runs the networking tools, optionally inside another network namespace ({@code prefix}, e.g. {@code ip netns exec
 * NAME}): one process per step, input on stdin.
 */
public final class Kernel {
  /**
   * The only tools the agent may run, each with the Debian package that provides it: the agent image installs
   * these packages (AgentImageTest checks src/main/docker/Dockerfile.agent, AgentImageIT the built image).
   */
  public static final Map<String, String> TOOLS = Map.ofEntries(
      Map.entry("ip", "iproute2"),
      Map.entry("ipset", "ipset"),
      Map.entry("iptables-save", "iptables"),
      Map.entry("iptables-restore", "iptables"),
      Map.entry("iptables-legacy-save", "iptables"),
      Map.entry("iptables-legacy-restore", "iptables"),
      Map.entry("iptables-nft-save", "iptables"),
      Map.entry("iptables-nft-restore", "iptables"),
      Map.entry("arping", "arping"),
      Map.entry("sysctl", "procps"),
      Map.entry("conntrack", "conntrack"));

  private final List<String> prefix;

  public Kernel(List<String> prefix) {
    this.prefix = List.copyOf(prefix);
  }

  public String run(String stdin, String... command) {
    List<String> argv = argv(command);
    try {
      Process p = new ProcessBuilder(argv).redirectErrorStream(false).start();
      try (OutputStream in = p.getOutputStream()) {
        if (stdin != null) {
          in.write(stdin.getBytes(StandardCharsets.UTF_8));
        }
      }
      // Read both streams fully before waiting: large outputs (iptables-save, ipset save) would block the child.
      var err = CompletableFuture.supplyAsync(() -> {
        try {
          return new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
          return e.toString();
        }
      });
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      if (!p.waitFor(30, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new KernelException(String.join(" ", command) + ": timed out");
      }
      if (p.exitValue() != 0) {
        throw new KernelException(String.join(" ", command) + " failed (exit " + p.exitValue() + "): "
            + err.join().strip() + (stdin == null ? "" : "\ninput:\n" + stdin));
      }
      return out;
    } catch (IOException e) {
      throw new KernelException(String.join(" ", command) + ": " + e.getMessage());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new KernelException(String.join(" ", command) + ": interrupted");
    }
  }

  /** Starts a command and does not wait for it (arping blocks about a second). */
  public Process start(String... command) {
    List<String> argv = argv(command);
    try {
      return new ProcessBuilder(argv).redirectOutput(ProcessBuilder.Redirect.DISCARD)
          .redirectError(ProcessBuilder.Redirect.DISCARD).start();
    } catch (IOException e) {
      throw new KernelException(String.join(" ", command) + ": " + e.getMessage());
    }
  }

  private List<String> argv(String... command) {
    if (!TOOLS.containsKey(command[0])) {
      throw new IllegalArgumentException(command[0] + " is not in Kernel.TOOLS: add it with its Debian package, so that"
          + " the agent image gets it");
    }
    List<String> argv = new ArrayList<>(prefix);
    argv.addAll(List.of(command));
    return argv;
  }

  public Observed observe(DataplaneSettings s) {
    return Observed.parse(run(null, "iptables-save"), run(null, "ipset", "save"),
        run(null, "ip", "-j", "address", "show", "dev", s.uplink()), run(null, "ip", "-j", "link", "show"),
        run(null, "ip", "route", "show", "table", "all", "proto", String.valueOf(DataplaneSettings.ROUTE_PROTOCOL)),
        run(null, "ip", "-j", "rule", "list"), s);
  }

  /** Runs the steps in the order {@link Changes} documents. */
  public void apply(Changes c) {
    batch("ip", c.release());
    batch("ip", c.ipBefore());
    for (String sysctl : c.tunnelSysctls()) {
      run(null, "sysctl", "-q", "-w", sysctl);
    }
    if (!c.ipsetBefore().isEmpty()) {
      run(c.ipsetBefore(), "ipset", "-exist", "restore");
    }
    for (String restore : c.iptables()) {
      run(restore, "iptables-restore", "--noflush", "-w", "5");
    }
    batch("ip", c.hold());
    if (!c.ipsetAfter().isEmpty()) {
      run(c.ipsetAfter(), "ipset", "-exist", "restore");
    }
    batch("ip", c.ipAfter());
  }

  private void batch(String tool, String script) {
    if (!script.isEmpty()) {
      run(script, tool, "-batch", "-");
    }
  }

  public static final class KernelException extends RuntimeException {
    public KernelException(String message) {
      super(message);
    }
  }
}
