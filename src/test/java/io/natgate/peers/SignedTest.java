package io.natgate.peers;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** The agents' message framing: only an intact body of the expected version, signed with the same key, opens. */
class SignedTest {
  private static final byte[] KEY = "0123456789abcdef0123456789abcdef".getBytes(StandardCharsets.US_ASCII);
  private final Signed signed = new Signed(KEY);
  private final byte[] sealed = signed.seal(new byte[] {1, 42, 7});

  @Test
  void theBodyAfterItsVersionByteOpens() throws Exception {
    var in = signed.open(sealed, sealed.length, (byte) 1, 3).orElseThrow();
    assertThat(in.readAllBytes()).containsExactly(42, 7);
  }

  @Test
  void anotherVersionATamperedBodyAnotherKeyOrAShortBodyDoNot() {
    assertThat(signed.open(sealed, sealed.length, (byte) 2, 3)).as("another version").isEmpty();
    byte[] tampered = sealed.clone();
    tampered[1]++;
    assertThat(signed.open(tampered, tampered.length, (byte) 1, 3)).as("tampered").isEmpty();
    byte[] otherKey = KEY.clone();
    otherKey[0]++;
    assertThat(new Signed(otherKey).open(sealed, sealed.length, (byte) 1, 3)).as("another key").isEmpty();
    assertThat(signed.open(sealed, sealed.length, (byte) 1, 4)).as("shorter than the minimum").isEmpty();
    assertThat(signed.open(Arrays.copyOf(sealed, 10), 10, (byte) 1, 0)).as("shorter than a MAC").isEmpty();
  }
}
