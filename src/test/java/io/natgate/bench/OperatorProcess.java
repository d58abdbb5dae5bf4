package io.natgate.bench;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** The packaged operator (target/quarkus-app) as a process of its own, with what can be read from outside it. */
final class OperatorProcess implements AutoCloseable {
  private final HttpClient http = HttpClient.newHttpClient();
  private final int port;
  private final Process process;
  private final long startedNanos;

  /**
   * Starts the operator with the heap it gets in its Deployment (the image's -XX:MaxRAMPercentage=75 of
   * config/manager's 512 MiB limit) and its log in {@code log}; more JVM options, space-separated, in the system
   * property {@code bench.operator-jvm-options} (e.g. the image's, to compare collectors or generation sizes).
   *
   * @param properties more system properties (natgate.* settings)
   */
  OperatorProcess(Path jar, Path kubeconfig, String leaderNamespace, Path log, Map<String, String> properties)
      throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    List<String> command = new ArrayList<>(List.of("java", "-Xmx384m", "-Dquarkus.http.port=" + port,
        "-Dnatgate.leader-election.namespace=" + leaderNamespace));
    String jvmOptions = System.getProperty("bench.operator-jvm-options", "").strip();
    if (!jvmOptions.isEmpty()) {
      command.addAll(1, List.of(jvmOptions.split("\\s+")));
    }
    properties.forEach((k, v) -> command.add("-D" + k + "=" + v));
    command.addAll(List.of("-jar", jar.toString()));
    var builder = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile());
    builder.environment().put("KUBECONFIG", kubeconfig.toString());
    startedNanos = System.nanoTime();
    process = builder.start();
    Runtime.getRuntime().addShutdownHook(new Thread(process::destroyForcibly)); // interrupted benchmark: no orphan
  }

  /** Waits until /q/health/ready answers 200 and returns the time since the process was started. */
  Duration awaitReady(Duration max) throws InterruptedException {
    long deadline = System.nanoTime() + max.toNanos();
    while (System.nanoTime() < deadline) {
      if (!process.isAlive()) {
        throw new IllegalStateException("operator exited with " + process.exitValue());
      }
      try {
        if (get("/q/health/ready").statusCode() == 200) {
          return Duration.ofNanos(System.nanoTime() - startedNanos);
        }
      } catch (IOException e) {
        // not listening yet
      }
      Thread.sleep(20);
    }
    throw new IllegalStateException("operator not ready within " + max);
  }

  /** Resident set size from /proc, in bytes. */
  long rssBytes() throws IOException {
    for (String line : Files.readAllLines(Path.of("/proc", String.valueOf(process.pid()), "status"))) {
      if (line.startsWith("VmRSS:")) {
        return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
      }
    }
    throw new IllegalStateException("no VmRSS");
  }

  /** Heap in use, the sum of jvm_memory_used_bytes{area="heap"} over the pools. */
  long heapUsedBytes() throws IOException, InterruptedException {
    return (long) metric("jvm_memory_used_bytes{area=\"heap\"");
  }

  /** Sum of the samples of every series whose line starts with {@code prefix} (name and, optionally, labels). */
  double metric(String prefix) throws IOException, InterruptedException {
    double sum = 0;
    for (String line : get("/q/metrics").body().split("\n")) {
      if (line.startsWith(prefix)) {
        sum += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
      }
    }
    return sum;
  }

  void saveMetrics(Path file) throws IOException, InterruptedException {
    Files.writeString(file, get("/q/metrics").body());
  }

  /** A full GC (jcmd), so that the heap read next is what is live rather than what the collector left. */
  void collectGarbage() throws IOException, InterruptedException {
    new ProcessBuilder("jcmd", String.valueOf(process.pid()), "GC.run").redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.DISCARD).start().waitFor(30, TimeUnit.SECONDS);
  }

  private HttpResponse<String> get(String path) throws IOException, InterruptedException {
    return http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
        .timeout(Duration.ofSeconds(5)).build(), HttpResponse.BodyHandlers.ofString());
  }

  @Override
  public void close() throws InterruptedException {
    process.destroy();
    if (!process.waitFor(15, TimeUnit.SECONDS)) {
      process.destroyForcibly().waitFor();
    }
  }
}
