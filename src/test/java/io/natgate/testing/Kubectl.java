package io.natgate.testing;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** The kubectl built with the control plane, run the way a user runs it, as cluster admin of one control plane. */
public final class Kubectl implements AutoCloseable {
  private final Path kubeconfig;

  public Kubectl(ControlPlane controlPlane) throws IOException {
    this(controlPlane.kubeConfigYaml());
  }

  /** Against any cluster, given its admin kubeconfig (a Kind cluster, say). */
  public Kubectl(String kubeconfigYaml) throws IOException {
    kubeconfig = Files.createTempFile("natgate-admin", ".kubeconfig");
    Files.writeString(kubeconfig, kubeconfigYaml);
  }

  public record Result(int exitCode, String out, String err) {
    public String summary() {
      return "exit " + exitCode + "\n" + out + err;
    }
  }

  /** Runs kubectl from the repository root (so that -k config/... works) and waits up to two minutes. */
  public Result run(String... args) throws IOException, InterruptedException {
    List<String> command = new ArrayList<>(List.of(ControlPlane.binary("kubectl").toString(),
        "--kubeconfig", kubeconfig.toString()));
    command.addAll(List.of(args));
    Path out = Files.createTempFile("kubectl", ".out");
    Path err = Files.createTempFile("kubectl", ".err");
    try {
      Process p = new ProcessBuilder(command).directory(ControlPlane.repo().toFile())
          .redirectOutput(out.toFile()).redirectError(err.toFile()).start();
      if (!p.waitFor(120, TimeUnit.SECONDS)) {
        p.destroyForcibly().waitFor();
        throw new IllegalStateException("kubectl " + String.join(" ", args) + ": no answer in 120 s");
      }
      return new Result(p.exitValue(), Files.readString(out), Files.readString(err));
    } finally {
      Files.deleteIfExists(out);
      Files.deleteIfExists(err);
    }
  }

  @Override
  public void close() throws IOException {
    Files.deleteIfExists(kubeconfig);
  }
}
