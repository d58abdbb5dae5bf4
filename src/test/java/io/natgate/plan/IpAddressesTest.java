package io.natgate.plan;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class IpAddressesTest {
  @Test
  void fromLongReadsBackWhatToLongWroteEvenThroughASignedInt() {
    for (String ip : new String[] {"0.0.0.0", "10.0.0.9", "198.19.1.15", "255.255.255.255", "128.0.0.1"}) {
      assertThat(IpAddresses.fromLong(IpAddresses.toLong(ip))).isEqualTo(ip);
      // The agents' codecs write the number as a 4-byte int and read it back signed.
      assertThat(IpAddresses.fromLong((int) IpAddresses.toLong(ip))).isEqualTo(ip);
    }
  }
}
