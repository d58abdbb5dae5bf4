package io.natgate.dataplane;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Asking whether another node has an egress IP: the arping command, and how its outcome is read. The "kernel" here
 * is a shell standing in for arping (its arguments after the script), so that each outcome can be had at will;
 * DataplaneLabIT probes real nodes.
 */
class AddressProbeTest {
  /** A kernel whose "arping" runs {@code script} with arping's arguments as $1...: its exit is arping's. */
  static Kernel arpingThat(String script) {
    return new Kernel(List.of("sh", "-c", script, "arping-stand-in"), Duration.ofSeconds(10));
  }

  @Test
  void theProbeAsksFromNoAddressOnTheUplinkUntilTheFirstAnswerOrItsDeadline() {
    assertThat(AddressProbe.command("eth0", "198.18.0.100", Duration.ofMillis(800))).containsExactly("arping", "-q",
        "-0", "-i", "eth0", "-C", "1", "-W", "0.020", "-w", "0.800", "198.18.0.100");
  }

  @Test
  void onlyTheIPsSomeNodeAnsweredForCountAsAnswered() {
    // arping exits 0 once answered, 1 when its deadline passed with no answer: here only .101 is answered.
    Kernel kernel = arpingThat("case \"$*\" in *' 198.18.0.101') exit 0;; esac; exit 1");
    assertThat(AddressProbe.unanswered(kernel, "eth0", List.of("198.18.0.100", "198.18.0.101", "198.18.0.102"),
        Duration.ofMillis(100))).containsExactly("198.18.0.100", "198.18.0.102");
  }

  @Test
  void aProbeThatCannotRunCountsAsUnanswered() {
    Kernel kernel = arpingThat("echo 'libnet_init(LIBNET_LINK, eth9): No such device' >&2; exit 1");
    assertThat(AddressProbe.unanswered(kernel, "eth9", List.of("198.18.0.100"), Duration.ofMillis(100)))
        .containsExactly("198.18.0.100");
  }

  @Test
  void eachIPIsAskedWithItsOwnCommand(@TempDir Path dir) throws Exception {
    // Each probe writes the arguments it was given to a file named by its last one, the IP.
    Kernel kernel = arpingThat("for a; do ip=$a; done; echo \"$*\" > " + dir + "/$ip");
    assertThat(AddressProbe.unanswered(kernel, "eth0", Set.of("198.18.0.100", "198.18.0.101"),
        Duration.ofMillis(100))).isEmpty();
    assertThat(Files.readString(dir.resolve("198.18.0.100")).strip())
        .isEqualTo("arping -q -0 -i eth0 -C 1 -W 0.020 -w 0.100 198.18.0.100");
    assertThat(Files.readString(dir.resolve("198.18.0.101")).strip())
        .isEqualTo("arping -q -0 -i eth0 -C 1 -W 0.020 -w 0.100 198.18.0.101");
  }

  @Test
  void noIPNoProbe() {
    assertThat(AddressProbe.unanswered(arpingThat("exit 2"), "eth0", List.of(), Duration.ofMillis(100))).isEmpty();
  }
}
