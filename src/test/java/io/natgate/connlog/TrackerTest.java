package io.natgate.connlog;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.natgate.api.v1alpha1.ConnectionLogState;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.dataplane.SnatPorts;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

class TrackerTest {
  static final String EGRESS_IP = "198.18.0.100";
  static final Instant T0 = Instant.parse("2026-11-29T23:00:00Z");
  static final ConntrackEvent TCP_NEW = new ConntrackEvent(T0, ConntrackEvent.Type.NEW, "tcp", "SYN_SENT",
      "198.19.1.11", 40088, "203.0.113.10", 7777, EGRESS_IP, 40090, null, null, null, null, null, false, 0x80000000L, 7);
  static final ConntrackEvent TCP_END = new ConntrackEvent(T0.plusSeconds(2), ConntrackEvent.Type.DESTROY, "tcp",
      "TIME_WAIT", "198.19.1.11", 40088, "203.0.113.10", 7777, EGRESS_IP, 40090, 4L, 216L, 4L, 228L, 1_250L, true,
      0x80000000L, 7);
  static final ConntrackEvent REFUSED = new ConntrackEvent(T0, ConntrackEvent.Type.DESTROY, "tcp", "CLOSE",
      "198.19.1.11", 53282, "203.0.113.10", 7778, EGRESS_IP, 53282, 1L, 60L, 1L, 40L, 0L, false, 0x80000000L, 8);
  final SimpleMeterRegistry registry = new SimpleMeterRegistry();
  final Tracker tracker = new Tracker("node-1", registry, SnatPorts.KERNEL);

  static Directory payments(Map<String, String> pods) {
    var state = new NodeGatewayState();
    state.snat.add(new NodeGatewayState.Snat(EGRESS_IP, true, List.copyOf(pods.keySet())));
    state.connectionLog = new ConnectionLogState(pods);
    return Directory.of(Map.of("payments", state));
  }


  @Test
  void onlyGatewaysWithTheLogOnAreInTheDirectory() {
    var off = new NodeGatewayState();
    off.snat.add(new NodeGatewayState.Snat("198.18.0.101", true, List.of("198.19.1.12")));
    Directory d = Directory.of(Map.of("payments", stateOf("198.19.1.11", "shop/api-1"), "partners", off));
    assertThat(d.gatewayByEgressIP()).containsExactly(Map.entry(EGRESS_IP, "payments"));
    assertThat(d.podByIP()).containsExactly(Map.entry("198.19.1.11", "shop/api-1"));
    assertThat(d.logging()).isTrue();
    assertThat(Directory.of(Map.of("partners", off)).logging()).isFalse();
  }

  static NodeGatewayState stateOf(String ip, String pod) {
    var state = new NodeGatewayState();
    state.snat.add(new NodeGatewayState.Snat(EGRESS_IP, true, List.of(ip)));
    state.connectionLog = new ConnectionLogState(Map.of(ip, pod));
    return state;
  }

  @Test
  void startAndEndNameThePodGatewayAndEgressIPAndTheEndCarriesTheCounts() {
    Directory d = payments(Map.of("198.19.1.11", "shop/api-1"));
    ConnectionRecord start = tracker.record(TCP_NEW, d);
    assertThat(start.event()).isEqualTo("start");
    assertThat(start.schema()).isEqualTo("natgate.io/connection-log/v1");
    assertThat(start.gateway()).isEqualTo("payments");
    assertThat(start.egressIP()).isEqualTo(EGRESS_IP);
    assertThat(start.podNamespace()).isEqualTo("shop");
    assertThat(start.podName()).isEqualTo("api-1");
    assertThat(start.srcPort()).isEqualTo(40088);
    assertThat(start.translatedPort()).isEqualTo(40090);
    assertThat(start.bytesOut()).isNull();
    assertThat(tracker.active()).isEqualTo(1);
    assertThat(registry.get("natgate_agent_connections_active").tag("gateway", "payments").gauge().value())
        .isEqualTo(1.0);

    // The pod is deleted before its connection ends: the end still names it, from the start.
    ConnectionRecord end = tracker.record(TCP_END, payments(Map.of()));
    assertThat(end.event()).isEqualTo("end");
    assertThat(end.podName()).isEqualTo("api-1");
    assertThat(end.startTime()).isEqualTo(start.time());
    assertThat(end.bytesOut()).isEqualTo(216);
    assertThat(end.bytesIn()).isEqualTo(228);
    assertThat(end.packetsOut()).isEqualTo(4);
    assertThat(end.durationMillis()).isEqualTo(1_250);
    assertThat(end.endReason()).isEqualTo("closed");
    assertThat(tracker.active()).isZero();
    assertThat(registry.get("natgate_agent_connections_started_total").tag("egress_ip", EGRESS_IP).counter().count())
        .isEqualTo(1.0);
    assertThat(registry.get("natgate_agent_connection_bytes_total").tag("direction", "in").counter().count())
        .isEqualTo(228.0);
    assertThat(registry.get("natgate_agent_connections_active").gauge().value()).isZero();
  }

  @Test
  void anUnknownSourceIsRecordedWithWhatIsKnownAndNoPod() {
    ConnectionRecord end = tracker.record(REFUSED, payments(Map.of()));
    assertThat(end.podName()).isNull();
    assertThat(end.podNamespace()).isNull();
    assertThat(end.srcIP()).isEqualTo("198.19.1.11");
    assertThat(end.gateway()).isEqualTo("payments");
    assertThat(end.startTime()).as("its start came before the agent listened").isNull();
    assertThat(tracker.active()).isZero();
  }

  @Test
  void aDestinationIsShortOfPortsAbove80PercentAndStaysSoUntil70WithoutFlapping() {
    var use = new PortUse(new SnatPorts(20000, 20099)); // 100 ports
    var busy = new PortUse.Destination(EGRESS_IP, "tcp", "203.0.113.10", 443);
    for (int i = 0; i < 80; i++) {
      use.add(busy);
    }
    assertThat(use.shortOfPorts(Set.of())).as("80 of 100 is not above 80 %").isEmpty();
    use.add(busy);
    assertThat(use.shortOfPorts(Set.of())).singleElement().satisfies(u -> {
      assertThat(u.destination()).isEqualTo(busy);
      assertThat(u.steppedPercent()).isEqualTo(80);
    });
    for (int i = 0; i < 6; i++) {
      use.add(busy);
    }
    assertThat(use.shortOfPorts(Set.of(busy)).get(0).steppedPercent()).as("87 % in steps of 5").isEqualTo(85);
    for (int i = 0; i < 10; i++) {
      use.remove(busy);
    }
    assertThat(use.shortOfPorts(Set.of(busy))).as("77 %: reported before, so still reported").hasSize(1);
    assertThat(use.shortOfPorts(Set.of())).as("77 %: not newly reported").isEmpty();
    for (int i = 0; i < 7; i++) {
      use.remove(busy);
    }
    assertThat(use.shortOfPorts(Set.of(busy))).as("70 %: cleared").isEmpty();
  }

  @Test
  void portUseCountsOpenConnectionsPerEgressIPAndDestination() {
    var use = new PortUse(SnatPorts.KERNEL);
    var busy = new PortUse.Destination(EGRESS_IP, "tcp", "203.0.113.10", 443);
    var quiet = new PortUse.Destination(EGRESS_IP, "tcp", "203.0.113.11", 443);
    for (int i = 0; i < 52_000; i++) {
      use.add(busy);
    }
    use.add(quiet);
    assertThat(use.topByEgressIP().get(EGRESS_IP).destination()).isEqualTo(busy);
    assertThat(use.above(0.8)).extracting(PortUse.Use::destination).containsExactly(busy);
    for (int i = 0; i < 1_000; i++) {
      use.remove(busy);
    }
    assertThat(use.above(0.8)).as("51,000 of 64,512 is 79 %").isEmpty();
    use.remove(quiet);
    use.remove(quiet); // an end whose start was never seen: no negative count
    assertThat(use.topByEgressIP().get(EGRESS_IP).destination()).isEqualTo(busy);
  }
}
