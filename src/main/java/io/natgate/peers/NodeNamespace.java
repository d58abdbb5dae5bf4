package io.natgate.peers;

import io.natgate.LibC;
import io.natgate.dataplane.Kernel;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The network namespace the kernel commands run in, for the agent-to-agent sockets (the DNS path, natgate-cni): a
 * socket belongs to the namespace of the thread that opened it. The agent runs in the node's own (nothing to do); a
 * lab agent in a test's JVM runs its commands in a lab node's, and its socket threads move there first (setns, through
 * libc with JNA).
 */
public final class NodeNamespace implements AutoCloseable {
  /** An open file of the namespace (it stays alive while open), or -1: this process's own. */
  private final int fd;

  public NodeNamespace(Kernel kernel) {
    fd = kernel.local() ? -1 : openOf(kernel);
  }

  /** Through a helper started like every kernel command, once it says it is inside (before, its /proc is not). */
  private static int openOf(Kernel kernel) {
    Process helper = kernel.listen("sh", "-c", "echo entered; exec sleep 30");
    try (var out = new BufferedReader(new InputStreamReader(helper.getInputStream(), StandardCharsets.US_ASCII))) {
      if (!"entered".equals(out.readLine())) {
        throw new IllegalStateException("could not enter the node's network namespace");
      }
      return LibC.open("/proc/" + helper.pid() + "/ns/net", 0);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } finally {
      helper.destroy();
    }
  }

  /** Threads that run in the namespace (daemon threads, named {@code name-N}). */
  public ThreadFactory threads(String name) {
    AtomicInteger n = new AtomicInteger();
    return r -> {
      Thread t = new Thread(() -> {
        if (fd >= 0) {
          LibC.setns(fd, LibC.CLONE_NEWNET);
        }
        r.run();
      }, name + "-" + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    };
  }

  @Override
  public void close() {
    if (fd >= 0) {
      LibC.close(fd);
    }
  }
}
