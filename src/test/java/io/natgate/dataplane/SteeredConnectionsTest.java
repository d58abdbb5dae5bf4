package io.natgate.dataplane;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class SteeredConnectionsTest {
  static final int MASK = 0x0ff00000;

  @Test
  void onlyMarksWithNatgatesBitsAreSteeredEachOnce() {
    String listing = """
        tcp      6 431999 ESTABLISHED src=198.19.2.11 dst=203.0.113.10 sport=40000 dport=7021 src=203.0.113.10 \
        dst=198.19.2.11 sport=7021 dport=40000 [ASSURED] mark=1048576 use=1
        tcp      6 431999 ESTABLISHED src=198.19.2.12 dst=203.0.113.10 sport=40001 dport=7022 src=203.0.113.10 \
        dst=198.18.0.12 sport=7022 dport=40001 [ASSURED] mark=0 use=1
        tcp      6 119 TIME_WAIT src=198.19.2.11 dst=203.0.113.10 sport=40002 dport=7021 src=203.0.113.10 \
        dst=198.19.2.11 sport=7021 dport=40002 [ASSURED] mark=1048576 use=1
        udp      17 29 src=198.19.2.11 dst=203.0.113.10 sport=5353 dport=53 [UNREPLIED] src=203.0.113.10 \
        dst=198.19.2.11 sport=53 dport=5353 mark=2149580800 use=1
        tcp      6 100 ESTABLISHED src=198.19.2.13 dst=203.0.113.10 sport=1 dport=2 src=203.0.113.10 dst=198.18.0.12 \
        sport=2 dport=1 [ASSURED] mark=2147483648 use=1
        """;
    // 0x80000000 alone is the connection log's mark, not a steering one; 0x80200000 is both
    assertThat(SteeredConnections.marks(listing, MASK)).containsExactly(1048576L, 2149580800L);
  }

  @Test
  void nothingListedNothingToDelete() {
    assertThat(SteeredConnections.marks("", MASK)).isEmpty();
    assertThat(SteeredConnections.delete(1048576L)).containsExactly("conntrack", "-D", "-f", "ipv4", "-m", "1048576");
  }
}
