package io.natgate.dns;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import io.natgate.peers.Signed;
import io.natgate.plan.IpAddresses;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The wire form of a {@link PairMessage}: version, kind, sender, sequence number, the fields, then an HMAC-SHA256
 * over everything before it with the peer key (io.natgate.peers.PeerKey). Pure; one instance per thread.
 * Addresses are 4 bytes, timeouts 4; a message holds at most {@link #MAX_PAIRS} pairs, which fits one datagram.
 */
public final class PairCodec {
  static final byte VERSION = 1;
  static final byte PAIRS = 1;
  static final byte ACK = 2;
  /** 64 pairs of 12 bytes plus a 253-character name and the header stay below 1,400 bytes. */
  public static final int MAX_PAIRS = 64;

  private final Signed signed;

  public PairCodec(byte[] key) {
    signed = new Signed(key);
  }

  public byte[] encode(PairMessage m) {
    var bytes = new ByteArrayOutputStream();
    try (var out = new DataOutputStream(bytes)) {
      out.writeByte(VERSION);
      out.writeByte(m instanceof PairMessage.Ack ? ACK : PAIRS);
      out.writeUTF(m.sender());
      out.writeLong(m.seq());
      if (m instanceof PairMessage.Ack a) {
        out.writeLong(a.acked());
      } else if (m instanceof PairMessage.Pairs p) {
        if (p.pairs().size() > MAX_PAIRS) {
          throw new IllegalArgumentException(p.pairs().size() + " pairs in one message; at most " + MAX_PAIRS);
        }
        out.writeBoolean(p.relayed());
        out.writeUTF(p.gateway());
        out.writeUTF(p.fqdn());
        out.writeShort(p.pairs().size());
        for (PairMessage.Pair pair : p.pairs()) {
          out.writeInt((int) IpAddresses.toLong(pair.pod()));
          out.writeInt((int) IpAddresses.toLong(pair.address()));
          out.writeInt((int) pair.timeoutSeconds());
        }
      }
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
    return signed.seal(bytes.toByteArray());
  }

  /** The message, or empty when the MAC does not match (forged, corrupt, another key) or it does not parse. */
  public Optional<PairMessage> decode(byte[] data, int length) {
    DataInputStream opened = signed.open(data, length, VERSION, 3).orElse(null);
    if (opened == null) {
      return Optional.empty();
    }
    try (var in = opened) {
      byte kind = in.readByte();
      String sender = in.readUTF();
      long seq = in.readLong();
      PairMessage m;
      if (kind == ACK) {
        m = new PairMessage.Ack(sender, seq, in.readLong());
      } else if (kind == PAIRS) {
        boolean relayed = in.readBoolean();
        String gateway = in.readUTF();
        String fqdn = in.readUTF();
        int n = in.readUnsignedShort();
        if (n > MAX_PAIRS) {
          return Optional.empty();
        }
        List<PairMessage.Pair> pairs = new ArrayList<>();
        for (int i = 0; i < n; i++) {
          pairs.add(new PairMessage.Pair(IpAddresses.fromLong(in.readInt()), IpAddresses.fromLong(in.readInt()),
              Integer.toUnsignedLong(in.readInt())));
        }
        m = new PairMessage.Pairs(sender, seq, relayed, gateway, fqdn, List.copyOf(pairs));
      } else {
        return Optional.empty();
      }
      return in.available() == 0 ? Optional.of(m) : Optional.empty();
    } catch (IOException e) {
      return Optional.empty();
    }
  }
}
