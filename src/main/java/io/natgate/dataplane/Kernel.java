package io.natgate.dataplane;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.jboss.logging.Logger;

/**
 * Runs the networking tools, optionally inside another network namespace ({@code prefix}, e.g. {@code ip netns exec
 * NAME}): one process per step, input on stdin. A command that does not finish within its timeout is killed with
 * every process it started, and reported as an error: a hung tool never blocks the agent.
 */
public class Kernel {
  private static final Logger LOG = Logger.getLogger(Kernel.class);
  /**
   * The only tools the agent may run, each with the Debian package that provides it: the agent image installs
   * these packages (AgentImageTest checks src/main/docker/Dockerfile.agent, AgentImageIT the built image).
   */
  public static final Map<String, String> TOOLS = Map.ofEntries(
      Map.entry("ip", "iproute2"),
      Map.entry("ipset", "ipset"),
      Map.entry("iptables-legacy-save", "iptables"),
      Map.entry("iptables-legacy-restore", "iptables"),
      Map.entry("iptables-nft-save", "iptables"),
      Map.entry("iptables-nft-restore", "iptables"),
      Map.entry("arping", "arping"),
      Map.entry("conntrack", "conntrack"),
      Map.entry("cat", "coreutils"),
      Map.entry("tee", "coreutils"),
      Map.entry("sleep", "coreutils"),
      Map.entry("sh", "dash"));
  /** Long enough for iptables-restore waiting on the xtables lock ({@code -w 5}) and for 50,000-member ipsets. */
  public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(30);

  /** Where kernel settings are read and written when not told otherwise. */
  public static final String PROC_SYS = "/proc/sys";

  private final List<String> prefix;
  private final Duration timeout;
  private final String procSys;

  public Kernel(List<String> prefix) {
    this(prefix, DEFAULT_TIMEOUT);
  }

  public Kernel(List<String> prefix, Duration timeout) {
    this(prefix, timeout, PROC_SYS);
  }

  /**
   * @param procSys where the kernel's settings are: a container's own /proc/sys is read-only, so the agent's
   *                DaemonSet mounts the node's /proc/sys/net elsewhere and names that place here
   */
  public Kernel(List<String> prefix, Duration timeout, String procSys) {
    this.prefix = List.copyOf(prefix);
    this.timeout = timeout;
    this.procSys = procSys;
  }

  public String run(String stdin, String... command) {
    return runWithin(timeout, stdin, command);
  }

  /**
   * Runs one command to its end and returns its stdout. Input, stdout and stderr are each served by a thread of their
   * own, so that neither a large input nor a large output can stall the child while we wait on another stream.
   */
  public String runWithin(Duration limit, String stdin, String... command) {
    String name = String.join(" ", command);
    long started = System.nanoTime();
    return finish(begin(command), name, started, limit, stdin);
  }

  private Process begin(String... command) {
    try {
      return new ProcessBuilder(argv(command)).start();
    } catch (IOException e) {
      throw new KernelException(String.join(" ", command) + ": " + e.getMessage());
    }
  }

  /** A command started ahead of the moment it is needed, waiting for its input. */
  public interface Prepared {
    /** Gives it its input and waits for its end, as {@link #run}; only once. */
    String run(String stdin);

    /** The same within {@code limit}, as {@link #runWithin}. */
    String runWithin(Duration limit, String stdin);

    /** Ends it unused (it gets no input, and does nothing). */
    void cancel();
  }

  /**
   * Starts a command that reads its input to the end before it acts ({@code ipset restore}, {@code ip -batch -}),
   * for a step that must be quick when it comes: starting a process (fork, exec, loading its libraries) is most of a
   * short command's time, 10-200 ms on a loaded node. Should this process die, the command gets an empty input.
   */
  public Prepared prepare(String... command) {
    Process p = begin(command);
    String name = String.join(" ", command);
    return new Prepared() {
      @Override
      public String run(String stdin) {
        return runWithin(timeout, stdin);
      }

      @Override
      public String runWithin(Duration limit, String stdin) {
        if (!p.isAlive()) { // its exit status would not say whether it acted on this input
          throw new KernelException(name + ": ended before its input (exit " + p.exitValue() + ")");
        }
        return finish(p, name, System.nanoTime(), limit, stdin);
      }

      @Override
      public void cancel() {
        p.destroy();
      }
    };
  }

  /** Feeds the started process its input, waits for it within {@code limit}, and returns its stdout. */
  private static String finish(Process p, String name, long started, Duration limit, String stdin) {
    long deadline = started + limit.toNanos();
    CompletableFuture<Void> in = background(() -> {
      try (OutputStream s = p.getOutputStream()) {
        if (stdin != null) {
          s.write(stdin.getBytes(StandardCharsets.UTF_8));
        }
      }
      return null;
    });
    CompletableFuture<String> out = background(() -> text(p.getInputStream()));
    CompletableFuture<String> err = background(() -> text(p.getErrorStream()));
    try {
      // The streams end when the last process holding them exits: a child left behind keeps them open.
      boolean exited = p.waitFor(remaining(deadline), TimeUnit.NANOSECONDS);
      String stdout = exited ? out.get(remaining(deadline), TimeUnit.NANOSECONDS) : null;
      String stderr = exited ? err.get(remaining(deadline), TimeUnit.NANOSECONDS) : null;
      if (!exited) {
        throw new TimeoutException();
      }
      in.cancel(true);
      if (p.exitValue() != 0) {
        throw new KernelException(name + " failed (exit " + p.exitValue() + "): " + stderr.strip()
            + (stdin == null ? "" : "\ninput:\n" + stdin));
      }
      LOG.debugf("%s: %d ms", name, (System.nanoTime() - started) / 1_000_000);
      return stdout;
    } catch (TimeoutException e) {
      killTree(p);
      throw new KernelException(name + ": no answer within " + limit.toMillis() + " ms: killed");
    } catch (ExecutionException e) {
      killTree(p);
      throw new KernelException(name + ": " + e.getCause());
    } catch (InterruptedException e) {
      killTree(p);
      Thread.currentThread().interrupt();
      throw new KernelException(name + ": interrupted");
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

  /** True when commands run in this process's own namespaces (no prefix). */
  public boolean local() {
    return prefix.isEmpty();
  }

  /** Starts a long-running command whose output the caller reads (stdout and stderr as separate pipes). */
  public Process listen(String... command) {
    List<String> argv = argv(command);
    try {
      return new ProcessBuilder(argv).start();
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

  /** natgate's objects in the kernel, its chains as {@code iptables} shows them. */
  public Observed observe(DataplaneSettings s, IptablesBackend iptables) {
    String links = run(null, "ip", "-j", "link", "show");
    return Observed.parse(run(null, iptables.save()), run(null, "ipset", "save"),
        run(null, "ip", "-j", "address", "show", "dev", s.uplink()), links,
        run(null, "ip", "route", "show", "table", "all", "proto", String.valueOf(DataplaneSettings.ROUTE_PROTOCOL)),
        run(null, "ip", "-j", "rule", "list"), s, Observed.hasLink(links, s.tunnelDevice())
            ? readSysctls(s.tunnelSysctls().keySet()) : Map.of());
  }

  /** Runs the steps in the order {@link Changes} documents; {@code hold} runs step 5 (see {@link NodeDataplane}). */
  public void apply(Changes c, IptablesBackend iptables, Runnable hold) {
    batch("ip", c.release());
    batch("ip", c.ipBefore());
    writeSysctls(c.sysctls());
    if (!c.ipsetBefore().isEmpty()) {
      run(c.ipsetBefore(), "ipset", "-exist", "restore");
    }
    for (String restore : c.iptables()) {
      restore(iptables, restore);
    }
    hold.run();
    if (!c.ipsetAfter().isEmpty()) {
      run(c.ipsetAfter(), "ipset", "-exist", "restore");
    }
    batch("ip", c.ipAfter());
  }

  /**
   * Removes natgate's chains, and the jumps to them, from {@code backend}: the restore runs it made (none when there
   * were none). A backend that cannot be read here (a kernel without it) holds nothing of ours.
   */
  public List<String> removeChains(IptablesBackend backend) {
    String save;
    try {
      save = run(null, backend.save());
    } catch (KernelException e) {
      return List.of();
    }
    List<String> runs = Changes.iptables(Observed.iptables(save), KernelPlan.EMPTY);
    runs.forEach(r -> restore(backend, r));
    return runs;
  }

  private void restore(IptablesBackend backend, String input) {
    run(input, backend.restore(), "--noflush", "-w", "5");
  }

  void batch(String tool, String script) {
    if (!script.isEmpty()) {
      run(script, tool, "-batch", "-");
    }
  }

  /**
   * Reads kernel settings ({@code net.ipv4.conf.natgate0.rp_filter}) from /proc/sys with {@code cat}, and writes them
   * with {@code tee}: both in coreutils, which every Debian-based image has (the {@code sysctl} binary needs procps,
   * which the agent image lacks), and both run through the prefix, so that they see the namespace's own /proc/sys/net.
   */
  public Map<String, String> readSysctls(java.util.Collection<String> keys) {
    Map<String, String> values = new LinkedHashMap<>();
    for (String key : keys) {
      try {
        values.put(key, run(null, "cat", procPath(key)).strip());
      } catch (KernelException e) {
        // absent (device gone): not set, so a change will write it
      }
    }
    return values;
  }

  /** Writes each setting's file under procSys (no sysctl binary: tee is in every image). */
  public void writeSysctls(Map<String, String> settings) {
    settings.forEach((key, value) -> run(value + "\n", "tee", procPath(key)));
  }

  String procPath(String key) {
    return procSys + "/" + key.replace('.', '/');
  }

  private static long remaining(long deadline) {
    return Math.max(0, deadline - System.nanoTime());
  }

  /**
   * Kills the process and everything it started: the descendants first, while they can still be found from it, and
   * again until none is left (one may have been starting meanwhile).
   */
  private static void killTree(Process p) {
    for (int round = 0; round < 5; round++) {
      List<ProcessHandle> descendants = p.descendants().toList();
      if (descendants.isEmpty()) {
        break;
      }
      descendants.forEach(ProcessHandle::destroyForcibly);
    }
    p.destroyForcibly();
  }

  private static String text(InputStream s) throws IOException {
    return new String(s.readAllBytes(), StandardCharsets.UTF_8);
  }

  private interface Io<T> {
    T call() throws IOException;
  }

  private static <T> CompletableFuture<T> background(Io<T> io) {
    var result = new CompletableFuture<T>();
    Thread t = new Thread(() -> {
      try {
        result.complete(io.call());
      } catch (IOException | RuntimeException e) {
        result.completeExceptionally(e);
      }
    }, "natgate-kernel-io");
    t.setDaemon(true);
    t.start();
    return result;
  }

  public static final class KernelException extends RuntimeException {
    public KernelException(String message) {
      super(message);
    }
  }
}
