package io.natgate.peers;

import java.io.ByteArrayInputStream;
import java.io.DataInputStream;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.Optional;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The framing of every message between agents (peer heartbeats, the DNS path's pairs, natgate-cni's sources): a
 * body that starts with its version byte, then an HMAC-SHA256 over it with the peer key. One instance per thread (a
 * {@link Mac} is not shareable).
 */
public final class Signed {
  public static final int MAC_LENGTH = 32;

  private final Mac mac;

  public Signed(byte[] key) {
    try {
      mac = Mac.getInstance("HmacSHA256");
      mac.init(new SecretKeySpec(key, "HmacSHA256"));
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException(e);
    }
  }

  /** The body followed by its MAC. */
  public byte[] seal(byte[] body) {
    byte[] sealed = Arrays.copyOf(body, body.length + MAC_LENGTH);
    System.arraycopy(mac.doFinal(body), 0, sealed, body.length, MAC_LENGTH);
    return sealed;
  }

  /**
   * The body of the first {@code length} bytes of {@code data} after its leading version byte, or empty when the MAC
   * does not match (forged, corrupt, another key), the body is shorter than {@code minBody} (the version byte
   * included), or it was written in another version of the message.
   */
  public Optional<DataInputStream> open(byte[] data, int length, byte version, int minBody) {
    if (length < MAC_LENGTH + Math.max(1, minBody) || length > data.length) {
      return Optional.empty();
    }
    int body = length - MAC_LENGTH;
    mac.update(data, 0, body);
    if (!MessageDigest.isEqual(mac.doFinal(), Arrays.copyOfRange(data, body, length)) || data[0] != version) {
      return Optional.empty();
    }
    return Optional.of(new DataInputStream(new ByteArrayInputStream(data, 1, body - 1)));
  }
}
