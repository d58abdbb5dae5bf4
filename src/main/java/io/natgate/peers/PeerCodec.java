package io.natgate.peers;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import javax.crypto.Mac;

/**
 * The wire form of a {@link PeerMessage}: a version byte, the fields, then an HMAC-SHA256 over everything before
 * it with the key the operator keeps in a Secret. Pure; a new instance per thread (a {@link Mac} is not shareable).
 * Version 2 adds the IPs a stopping sender hands over; a message without any (every heartbeat) is written as version
 * 1, which agents of the previous release read: during a rolling update only a farewell is lost on them (they take
 * over after the takeover time instead, as without one).
 */
public final class PeerCodec {
  static final byte VERSION = 1;
  static final byte HANDING_OVER = 2;
  /** Fits one Ethernet frame with room to spare; a group never needs more. */
  public static final int MAX_LENGTH = 1400;

  private final Signed signed;

  public PeerCodec(byte[] key) {
    signed = new Signed(key);
  }

  public byte[] encode(PeerMessage m) {
    var bytes = new ByteArrayOutputStream();
    try (var out = new DataOutputStream(bytes)) {
      boolean handsOver = !m.handsOver().isEmpty();
      out.writeByte(handsOver ? HANDING_OVER : VERSION);
      out.writeUTF(m.sender());
      out.writeLong(m.seq());
      writeSet(out, m.holds());
      out.writeShort(m.hears().size());
      for (var e : new java.util.TreeMap<>(m.hears()).entrySet()) {
        out.writeUTF(e.getKey());
        out.writeLong(e.getValue().seq());
        out.writeInt(e.getValue().agoMillis());
        writeSet(out, e.getValue().holds());
      }
      if (handsOver) {
        writeSet(out, m.handsOver());
      }
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
    byte[] sealed = signed.seal(bytes.toByteArray());
    if (sealed.length > MAX_LENGTH) {
      throw new IllegalArgumentException("peer message of " + sealed.length + " bytes exceeds " + MAX_LENGTH);
    }
    return sealed;
  }

  /** The message, or empty when the MAC does not match (forged, corrupt, another key) or it does not parse. */
  public Optional<PeerMessage> decode(byte[] data, int length) {
    byte version = length > 0 && data.length > 0 && data[0] == HANDING_OVER ? HANDING_OVER : VERSION;
    DataInputStream opened = signed.open(data, length, version, 2).orElse(null);
    if (opened == null) {
      return Optional.empty();
    }
    try (var in = opened) {
      String sender = in.readUTF();
      long seq = in.readLong();
      Set<String> holds = readSet(in);
      int n = in.readUnsignedShort();
      Map<String, PeerMessage.Heard> hears = new LinkedHashMap<>();
      for (int i = 0; i < n; i++) {
        hears.put(in.readUTF(), new PeerMessage.Heard(in.readLong(), in.readInt(), readSet(in)));
      }
      Set<String> handsOver = version == HANDING_OVER ? readSet(in) : Set.of();
      return in.available() == 0 ? Optional.of(new PeerMessage(sender, seq, holds, hears, handsOver))
          : Optional.empty();
    } catch (IOException e) {
      return Optional.empty();
    }
  }

  private static void writeSet(DataOutputStream out, Set<String> values) throws IOException {
    out.writeShort(values.size());
    for (String v : new TreeSet<>(values)) {
      out.writeUTF(v);
    }
  }

  private static Set<String> readSet(DataInputStream in) throws IOException {
    int n = in.readUnsignedShort();
    Set<String> values = new TreeSet<>();
    for (int i = 0; i < n; i++) {
      values.add(in.readUTF());
    }
    return values;
  }
}
