package io.natgate;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/** SHA-256 of a string's UTF-8 bytes, for stable short names and hashes (object names, kernel names, rendezvous). */
public final class Sha256 {
  private Sha256() {
  }

  public static byte[] of(String s) {
    try {
      return MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("every Java runtime has SHA-256", e);
    }
  }

  /** The first {@code bytes} bytes of the digest, in lower-case hex. */
  public static String hex(String s, int bytes) {
    return HexFormat.of().formatHex(of(s), 0, bytes);
  }

  /** The first 8 bytes of the digest as a long (big-endian). */
  public static long first64Bits(String s) {
    byte[] d = of(s);
    long v = 0;
    for (int i = 0; i < 8; i++) {
      v = (v << 8) | (d[i] & 0xff);
    }
    return v;
  }
}
