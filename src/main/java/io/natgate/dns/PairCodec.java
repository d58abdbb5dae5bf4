package io.natgate.dns;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import io.natgate.plan.IpAddresses;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The wire form of a {@link PairMessage}: version, kind, sender, sequence number, the fields, then an HMAC-SHA256
 * over everything before it with the peer key (io.natgate.peers.PeerKey). Pure; one instance per thread.
 * Addresses are 4 bytes, timeouts 4; a message holds at most {@link #MAX_PAIRS} pairs, which fits one datagram.
 */
public final class PairCodec {
  static final byte VERSION = 1;
  static final byte PAIRS = 1;
  static final byte ACK = 2;
  static final int MAC_LENGTH = 32;
  /** 64 pairs of 12 bytes plus a 253-character name and the header stay below 1,400 bytes. */
  public static final int MAX_PAIRS = 64;

  private final Mac mac;

  public PairCodec(byte[] key) {
    try {
      mac = Mac.getInstance("HmacSHA256");
      mac.init(new SecretKeySpec(key, "HmacSHA256"));
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException(e);
    }
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
      out.write(mac.doFinal(bytes.toByteArray()));
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
    return bytes.toByteArray();
  }

  /** The message, or empty when the MAC does not match (forged, corrupt, another key) or it does not parse. */
  public Optional<PairMessage> decode(byte[] data, int length) {
    if (length <= MAC_LENGTH + 2 || length > data.length) {
      return Optional.empty();
    }
    int body = length - MAC_LENGTH;
    mac.update(data, 0, body);
    if (!MessageDigest.isEqual(mac.doFinal(), Arrays.copyOfRange(data, body, length))) {
      return Optional.empty();
    }
    try (var in = new DataInputStream(new ByteArrayInputStream(data, 0, body))) {
      if (in.readByte() != VERSION) {
        return Optional.empty();
      }
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
          pairs.add(new PairMessage.Pair(address(in), address(in), Integer.toUnsignedLong(in.readInt())));
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

  private static String address(DataInputStream in) throws IOException {
    byte[] a = new byte[4];
    in.readFully(a);
    try {
      return InetAddress.getByAddress(a).getHostAddress();
    } catch (UnknownHostException e) {
      throw new IOException(e);
    }
  }
}
