package io.natgate.dataplane;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.HexFormat;
import org.junit.jupiter.api.Test;

/** The frame the agent sends for a takeover: the gratuitous ARP request that {@code arping -U} sends. */
class GratuitousArpTest {
  @Test
  void aBroadcastArpRequestFromTheUplinksAddressForTheEgressIPItself() {
    byte[] mac = HexFormat.of().parseHex("0a1b2c3d4e5f");
    byte[] ip = {(byte) 198, 18, 0, 100};
    String frame = HexFormat.of().formatHex(GratuitousArp.frame(mac, ip));
    assertThat(frame).isEqualTo(
        "ffffffffffff" + "0a1b2c3d4e5f" + "0806" // broadcast, from the uplink, ARP
            + "0001" + "0800" + "06" + "04" + "0001" // Ethernet, IPv4, request
            + "0a1b2c3d4e5f" + "c6120064" // sender: the uplink's address, the egress IP
            + "000000000000" + "c6120064"); // target: unknown, the egress IP again (gratuitous)
    assertThat(frame).hasSize(2 * GratuitousArp.FRAME_SIZE);
  }
}
