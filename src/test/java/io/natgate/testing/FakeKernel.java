package io.natgate.testing;

import io.natgate.dataplane.Kernel;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.stream.Collectors;

/**
 * A kernel for tests that need no root: it records each command (with its input), keeps the uplink's addresses and
 * the tunnel device as {@code ip} would, answers the observation commands from that, and can hold a chosen command
 * until the test lets it finish, as a slow {@code ip -batch} or a busy xtables lock would.
 */
public final class FakeKernel extends Kernel {
  private final List<Process> started = new CopyOnWriteArrayList<>();
  private volatile boolean startedRun;
  private final String uplink;
  private final Set<String> addresses = new TreeSet<>();
  private boolean tunnel;
  private final List<String> commands = new CopyOnWriteArrayList<>();
  private volatile Predicate<String> blocking = c -> false;
  private volatile CountDownLatch blocked = new CountDownLatch(1);
  private volatile CountDownLatch release = new CountDownLatch(0);

  public FakeKernel(String uplink) {
    super(List.of());
    this.uplink = uplink;
  }

  /** The next command matching {@code command} (its argv and input, as one string) waits for {@link #release()}. */
  public void holdNext(Predicate<String> command) {
    blocked = new CountDownLatch(1);
    release = new CountDownLatch(1);
    blocking = command;
  }

  public boolean awaitHeld(Duration max) throws InterruptedException {
    return blocked.await(max.toMillis(), TimeUnit.MILLISECONDS);
  }

  public void release() {
    blocking = c -> false;
    release.countDown();
  }

  public synchronized Set<String> addresses() {
    return new TreeSet<>(addresses);
  }

  /** Every command run so far: argv, then its input on the following lines. */
  public List<String> commands() {
    return List.copyOf(commands);
  }

  @Override
  public String runWithin(Duration limit, String stdin, String... command) {
    String line = String.join(" ", command) + (stdin == null ? "" : "\n" + stdin);
    commands.add(line);
    if (blocking.test(line)) {
      blocking = c -> false;
      blocked.countDown();
      try {
        if (!release.await(limit.toMillis(), TimeUnit.MILLISECONDS)) {
          throw new KernelException(command[0] + ": no answer within " + limit.toMillis() + " ms: killed");
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new KernelException("interrupted");
      }
    }
    return answer(stdin, List.of(command));
  }

  private synchronized String answer(String stdin, List<String> argv) {
    String joined = String.join(" ", argv);
    if (joined.equals("ip -batch -") || joined.equals("ip -force -batch -")) {
      for (String l : stdin.split("\n")) {
        List<String> f = List.of(l.trim().split("\\s+"));
        if (f.size() >= 5 && f.get(0).equals("address") && f.get(1).equals("flush") && f.contains(uplink)) {
          addresses.remove(f.get(f.indexOf("to") + 1).replace("/32", "")); // whether there or not, as the kernel's
        } else if (f.size() >= 3 && f.get(0).equals("address") && f.contains(uplink)) {
          String ip = f.get(2).replace("/32", "");
          if (f.get(1).equals("add") && !addresses.add(ip)) {
            throw new KernelException("ip address add " + ip + ": Address already assigned");
          } else if (f.get(1).equals("replace") || f.get(1).equals("change")) { // IPv4 "change" adds a missing one
            addresses.add(ip);
          } else if (f.get(1).equals("del")) {
            if (!addresses.remove(ip)) {
              throw new KernelException("ip address del " + ip + ": Cannot assign requested address");
            }
          }
        } else if (f.size() >= 3 && f.get(0).equals("link") && f.get(2).equals("natgate0")) {
          tunnel = !f.get(1).equals("del");
        }
      }
      return "";
    }
    if (joined.startsWith("ip -j") && joined.contains("address show")) {
      return "[{\"ifname\":\"" + uplink + "\",\"addr_info\":[" + addresses.stream()
          .map(a -> "{\"family\":\"inet\",\"local\":\"" + a + "\",\"prefixlen\":32}").collect(Collectors.joining(","))
          + "]}]";
    }
    if (joined.equals("ip -j link show")) {
      return "[{\"ifname\":\"" + uplink + "\",\"mtu\":1500}" + (tunnel ? ",{\"ifname\":\"natgate0\",\"mtu\":1450}" : "")
          + "]";
    }
    if (joined.startsWith("ip -j")) {
      return "[]";
    }
    return "";
  }

  /** Runs as {@link #runWithin} when given its input: recorded then, as one command. */
  @Override
  public Prepared prepare(String... command) {
    return new Prepared() {
      @Override
      public String run(String stdin) {
        return runWithin(Duration.ofSeconds(30), stdin);
      }

      @Override
      public String runWithin(Duration limit, String stdin) {
        return FakeKernel.this.runWithin(limit, stdin, command);
      }

      @Override
      public void cancel() {
      }
    };
  }

  @Override
  public Process start(String... command) {
    commands.add(String.join(" ", command));
    try {
      Process p = new ProcessBuilder(startedRun ? List.of("sleep", "60") : List.of("true")).start();
      started.add(p);
      return p;
    } catch (IOException e) {
      throw new KernelException(e.getMessage());
    }
  }

  /** From now on started processes (arping) run until stopped, as the real ones do for seconds. */
  public void keepStartedRunning() {
    startedRun = true;
  }

  /** The processes started so far, oldest first. */
  public List<Process> started() {
    return List.copyOf(started);
  }

  /** Commands run so far whose text contains {@code part}. */
  public List<String> commandsWith(String part) {
    return new ArrayList<>(commands.stream().filter(c -> c.contains(part)).toList());
  }
}
