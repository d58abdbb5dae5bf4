package io.natgate.dns;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.natgate.api.v1alpha1.AllowEntry;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.api.v1alpha1.PortRange;
import io.natgate.api.v1alpha1.Protocol;
import java.util.List;
import org.junit.jupiter.api.Test;

class SetMembersTest {
  static final PortRange HTTPS = new PortRange(Protocol.TCP, 443, null);
  static final PortRange RANGE = new PortRange(Protocol.UDP, 8000, 8080);

  @Test
  void aPairIsOneMemberOfANetNetSetAndOnePerPortOfAPortSet() {
    assertThat(SetMembers.of("hash:net,net", "198.19.1.11", "203.0.113.20", List.of()))
        .containsExactly("198.19.1.11,203.0.113.20");
    assertThat(SetMembers.of("hash:ip,port,ip", "198.19.1.11", "203.0.113.20", List.of(HTTPS, RANGE)))
        .containsExactly("198.19.1.11,tcp:443,203.0.113.20", "198.19.1.11,udp:8000-8080,203.0.113.20");
    assertThatThrownBy(() -> SetMembers.of("hash:ip,port,ip", "198.19.1.11", "203.0.113.20", List.of()))
        .hasMessageContaining("every port");
    assertThatThrownBy(() -> SetMembers.of("hash:ip", "198.19.1.11", "203.0.113.20", List.of()))
        .hasMessageContaining("hash:ip");
  }

  @Test
  void aNamesPortsAreThoseOfItsEntriesOrEveryPortWhenOneHasNone() {
    var s = new NodeGatewayState();
    s.allow = List.of(new AllowEntry(null, "a.example", List.of(HTTPS)),
        new AllowEntry(null, "a.example", List.of(RANGE, HTTPS)), new AllowEntry(null, "b.example", List.of(HTTPS)),
        new AllowEntry(null, "b.example", List.of()), new AllowEntry("198.51.100.0/24", null, List.of(RANGE)));
    assertThat(SetMembers.portsOf(s, "a.example")).containsExactly(HTTPS, RANGE);
    assertThat(SetMembers.portsOf(s, "b.example")).isEmpty();
    assertThat(SetMembers.portsOf(null, "a.example")).isEmpty();
  }
}
