package io.natgate.kind;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Instant;
import org.junit.jupiter.api.Test;

class FirstPacketsTest {
  @Test
  void aMasqueradedFirstPacketNamesThePodAndTheNodesAddress() {
    var flow = FirstPackets.parse("w1", "[1764489600.012345]\t    [NEW] tcp      6 120 SYN_SENT src=198.18.161.7 "
        + "dst=198.18.224.250 sport=41000 dport=8080 [UNREPLIED] src=198.18.224.250 dst=198.18.224.3 sport=8080 "
        + "dport=27611").orElseThrow();
    assertThat(flow).isEqualTo(new FirstPackets.Flow("w1", Instant.ofEpochSecond(1764489600, 12_345_000),
        "198.18.161.7", 41000, "198.18.224.250", 8080, "198.18.224.3", 27611));
    assertThat(flow.untranslated()).isFalse();
  }

  @Test
  void aDirectorsSteeredFirstPacketIsUntranslated() {
    var flow = FirstPackets.parse("w2", "[1764489600.500000]\t    [NEW] tcp      6 120 SYN_SENT src=198.18.162.4 "
        + "dst=198.18.224.250 sport=50000 dport=8080 [UNREPLIED] src=198.18.224.250 dst=198.18.162.4 sport=8080 "
        + "dport=50000 mark=15728640").orElseThrow();
    assertThat(flow.untranslated()).isTrue();
    assertThat(flow.source()).isEqualTo("198.18.162.4");
  }

  @Test
  void otherEventsAndConntracksOwnMessagesAreNotFlows() {
    assertThat(FirstPackets.parse("w1", "[1764489600.500000]\t [DESTROY] tcp      6 src=198.18.162.4 "
        + "dst=198.18.224.250 sport=50000 dport=8080 src=198.18.224.250 dst=198.18.162.4 sport=8080 dport=50000"))
        .isEmpty();
    assertThat(FirstPackets.parse("w1", "conntrack v1.4.7 (conntrack-tools): 12 flow events have been shown."))
        .isEmpty();
  }
}
