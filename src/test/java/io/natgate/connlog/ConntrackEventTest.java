package io.natgate.connlog;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Instant;
import org.junit.jupiter.api.Test;

/** Lines as conntrack v1.4.7 printed them in a lab namespace (-E -e NEW,DESTROY -o timestamp,extended,id). */
class ConntrackEventTest {
  static final String TCP_NEW = "[1795991363.659021]\t    [NEW] ipv4     2 tcp      6 120 SYN_SENT src=198.19.1.11 "
      + "dst=203.0.113.10 sport=40088 dport=7777 [UNREPLIED] src=203.0.113.10 dst=198.18.0.100 sport=7777 "
      + "dport=40090 mark=-2147483648 id=438409276";
  static final String TCP_END = "[1795991373.279670]\t[DESTROY] ipv4     2 tcp      6 TIME_WAIT src=198.19.1.11 "
      + "dst=203.0.113.10 sport=40088 dport=7777 packets=4 bytes=216 src=203.0.113.10 dst=198.18.0.100 sport=7777 "
      + "dport=40090 packets=4 bytes=228 [ASSURED] mark=-2147483648 delta-time=1 id=438409276";
  static final String REFUSED = "[1795991345.370547]\t[DESTROY] ipv4     2 tcp      6 120 CLOSE src=198.19.1.11 "
      + "dst=203.0.113.10 sport=53282 dport=7778 packets=1 bytes=60 [UNREPLIED] src=203.0.113.10 dst=198.18.0.100 "
      + "sport=7778 dport=53282 packets=1 bytes=40 mark=-2147483648 delta-time=0 id=596304989";
  static final String UDP_NEW = "[1795991345.363588]\t    [NEW] ipv4     2 udp      17 30 src=198.19.1.11 "
      + "dst=203.0.113.10 sport=45167 dport=9999 [UNREPLIED] src=203.0.113.10 dst=198.18.0.100 sport=9999 "
      + "dport=45167 mark=-2147483648 id=1133575765";
  static final String ICMP_END = "[1795991400.000001]\t[DESTROY] ipv4     2 icmp     1 src=198.19.1.11 "
      + "dst=203.0.113.10 type=8 code=0 id=17 packets=1 bytes=84 src=203.0.113.10 dst=198.18.0.100 type=0 code=0 "
      + "id=17 packets=1 bytes=84 mark=-2147483648 delta-time=30 id=99";

  @Test
  void newTcpConnectionHasBothTuplesAndNoCounters() {
    ConntrackEvent e = ConntrackEvent.parse(TCP_NEW);
    assertThat(e.type()).isEqualTo(ConntrackEvent.Type.NEW);
    assertThat(e.time()).isEqualTo(Instant.ofEpochSecond(1795991363L, 659021000));
    assertThat(e.protocol()).isEqualTo("tcp");
    assertThat(e.tcpState()).isEqualTo("SYN_SENT");
    assertThat(e.srcIP()).isEqualTo("198.19.1.11");
    assertThat(e.srcPort()).isEqualTo(40088);
    assertThat(e.dstIP()).isEqualTo("203.0.113.10");
    assertThat(e.dstPort()).isEqualTo(7777);
    assertThat(e.replyDstIP()).as("the egress IP").isEqualTo("198.18.0.100");
    assertThat(e.replyDstPort()).as("the translated source port").isEqualTo(40090);
    assertThat(e.bytesOut()).isNull();
    assertThat(e.id()).isEqualTo(438409276L);
  }

  @Test
  void destroyedTcpConnectionCarriesCountersEachWayDurationAndWhyItEnded() {
    ConntrackEvent e = ConntrackEvent.parse(TCP_END);
    assertThat(e.type()).isEqualTo(ConntrackEvent.Type.DESTROY);
    assertThat(e.packetsOut()).isEqualTo(4);
    assertThat(e.bytesOut()).isEqualTo(216);
    assertThat(e.packetsIn()).isEqualTo(4);
    assertThat(e.bytesIn()).isEqualTo(228);
    assertThat(e.deltaSeconds()).isEqualTo(1);
    assertThat(e.assured()).isTrue();
    assertThat(e.endReason()).isEqualTo("closed");
    assertThat(ConntrackEvent.parse(REFUSED).endReason()).isEqualTo("refused");
  }

  @Test
  void udpHasNoStateAndEndsByTimeout() {
    ConntrackEvent e = ConntrackEvent.parse(UDP_NEW);
    assertThat(e.tcpState()).isNull();
    assertThat(e.protocol()).isEqualTo("udp");
    assertThat(e.dstPort()).isEqualTo(9999);
    assertThat(e.endReason()).isEqualTo("timeout");
  }

  @Test
  void icmpHasNoPortsAndItsOwnIdIsNotConntracks() {
    ConntrackEvent e = ConntrackEvent.parse(ICMP_END);
    assertThat(e.srcPort()).isNull();
    assertThat(e.dstPort()).isNull();
    assertThat(e.id()).isEqualTo(99);
    assertThat(e.bytesIn()).isEqualTo(84);
  }

  @Test
  void linesThatAreNotEventsAreRefusedWithWhatIsWrong() {
    assertThatThrownBy(() -> ConntrackEvent.parse("conntrack v1.4.7 (conntrack-tools): 4 flow events have been shown."))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not a conntrack event line");
    assertThatThrownBy(() -> ConntrackEvent.parse("[1.0] [UPDATE] ipv4 2 tcp 6 src=1.1.1.1 dst=2.2.2.2 id=1"))
        .hasMessageContaining("unexpected event type [UPDATE]");
    assertThatThrownBy(() -> ConntrackEvent.parse("[1.0] [NEW] ipv4 2 tcp 6 120 SYN_SENT src=1.1.1.1 dst=2.2.2.2"))
        .hasMessageContaining("without both tuples");
  }
}
