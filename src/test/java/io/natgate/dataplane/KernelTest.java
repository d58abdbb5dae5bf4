package io.natgate.dataplane;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Running tools: a hung one is killed with its children and reported; large inputs and outputs never stall. */
class KernelTest {
  private final Kernel kernel = new Kernel(List.of(), Duration.ofMillis(800));

  @Test
  void aHungCommandIsKilledWithEverythingItStartedAndReported(@TempDir Path dir) throws Exception {
    Path childPid = dir.resolve("child");
    // Long enough for the shell to have started its child on a loaded machine: the tree is what is being killed.
    var patient = new Kernel(List.of(), Duration.ofMillis(2500));
    long started = System.nanoTime();
    assertTimeoutPreemptively(Duration.ofSeconds(20), () -> assertThatThrownBy(
        () -> patient.run(null, "sh", "-c", "sleep 60 & echo $! > " + childPid + "; wait"))
        .isInstanceOf(Kernel.KernelException.class).hasMessageContaining("no answer within 2500 ms: killed"));
    assertThat(Duration.ofNanos(System.nanoTime() - started)).isLessThan(Duration.ofSeconds(15));
    long pid = Long.parseLong(Files.readString(childPid).strip());
    await().atMost(Duration.ofSeconds(5)).until(() -> ProcessHandle.of(pid).map(p -> !p.isAlive()).orElse(true));
  }

  /** A command started ahead acts on the input it is given later; one ended unused leaves no process behind. */
  @Test
  void aPreparedCommandRunsOnItsInputAndACancelledOneEnds() {
    var patient = new Kernel(List.of(), Duration.ofSeconds(10));
    assertThat(patient.prepare("sh", "-c", "tr a-z A-Z").run("held\n")).isEqualTo("HELD\n");
    assertThatThrownBy(() -> patient.prepare("sh", "-c", "cat >/dev/null; exit 3").run("x"))
        .isInstanceOf(Kernel.KernelException.class).hasMessageContaining("exit 3");
    var ended = patient.prepare("sh", "-c", "exit 0");
    await().atMost(Duration.ofSeconds(5)).until(() -> ProcessHandle.current().children().noneMatch(
        c -> c.info().commandLine().orElse("").contains("exit 0")));
    assertThatThrownBy(() -> ended.run("x")).hasMessageContaining("ended before its input");
    long before = ProcessHandle.current().children().count();
    patient.prepare("cat").cancel();
    await().atMost(Duration.ofSeconds(5)).until(() -> ProcessHandle.current().children().count() <= before);
  }

  @Test
  void aCommandThatNeverReadsItsInputStillTimesOut() {
    String input = "x".repeat(4 << 20); // far more than a pipe holds
    assertTimeoutPreemptively(Duration.ofSeconds(10), () -> assertThatThrownBy(
        () -> kernel.run(input, "sleep", "60")).hasMessageContaining("killed"));
  }

  @Test
  void largeInputAndBothLargeOutputsAtOnceComeThroughWhole() {
    var big = new Kernel(List.of(), Duration.ofSeconds(20));
    String input = "0123456789abcdef\n".repeat(256 * 1024); // 4.25 MiB, echoed back while stderr fills too
    String out = assertTimeoutPreemptively(Duration.ofSeconds(20),
        () -> big.run(input, "sh", "-c", "head -c 3000000 /dev/zero >&2 & cat; wait"));
    assertThat(out).isEqualTo(input);
  }

  @Test
  void aFailingCommandReportsItsExitAndStderr() {
    assertThatThrownBy(() -> kernel.run(null, "sh", "-c", "echo nope >&2; exit 3"))
        .hasMessageContaining("exit 3").hasMessageContaining("nope");
  }

  @Test
  void kernelSettingsAreReadAndWrittenWhereTheyAreMounted(@TempDir Path procSys) throws Exception {
    // The agent's DaemonSet mounts the node's /proc/sys/net elsewhere: a container's own /proc/sys is read-only.
    Path rpFilter = procSys.resolve("net/ipv4/conf/natgate0/rp_filter");
    Files.createDirectories(rpFilter.getParent());
    Files.writeString(rpFilter, "1\n");
    var kernel = new Kernel(List.of(), Duration.ofSeconds(10), procSys.toString());

    kernel.writeSysctls(Map.of("net.ipv4.conf.natgate0.rp_filter", "2"));

    assertThat(Files.readString(rpFilter)).isEqualTo("2\n");
    assertThat(kernel.readSysctls(List.of("net.ipv4.conf.natgate0.rp_filter")))
        .containsExactly(Map.entry("net.ipv4.conf.natgate0.rp_filter", "2"));
  }
}
