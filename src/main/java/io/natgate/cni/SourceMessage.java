package io.natgate.cni;

import io.natgate.peers.Signed;
import io.natgate.plan.IpAddresses;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.util.Optional;

/**
 * What a director node's agent and a gateway node's agent say about a new pod, on the node network: add (or remove)
 * one pod as a source of one egress IP of one gateway, or acknowledge that the kernel has it. The wire form is
 * version, kind, sender, sequence number, the fields, then the peer key's MAC ({@link Signed}).
 *
 * @param sender  the sending node's name
 * @param seq     {@link io.natgate.peers.SequenceClock}: grows with every message of the sender, across restarts
 * @param acked   for an ACK, the sequence number of the message acknowledged; else 0
 * @param relayed sent on by the gateway node to its standbys: not relayed again, nor acknowledged
 */
public record SourceMessage(Kind kind, String sender, long seq, long acked, boolean relayed, String gateway,
    String egressIP, String pod) {
  static final byte VERSION = 1;

  public enum Kind {
    ADD, DEL, ACK
  }

  static SourceMessage change(Kind kind, String sender, String gateway, String egressIP, String pod) {
    return new SourceMessage(kind, sender, 0, 0, false, gateway, egressIP, pod);
  }

  SourceMessage numbered(long seq) {
    return new SourceMessage(kind, sender, seq, acked, relayed, gateway, egressIP, pod);
  }

  SourceMessage relayedBy(String node) {
    return new SourceMessage(kind, node, 0, 0, true, gateway, egressIP, pod);
  }

  static SourceMessage ack(String sender, long acked) {
    return new SourceMessage(Kind.ACK, sender, 0, acked, false, "", "0.0.0.0", "0.0.0.0");
  }

  byte[] encode(Signed signed) {
    var bytes = new ByteArrayOutputStream();
    try (var out = new DataOutputStream(bytes)) {
      out.writeByte(VERSION);
      out.writeByte(kind.ordinal());
      out.writeUTF(sender);
      out.writeLong(seq);
      out.writeLong(acked);
      out.writeBoolean(relayed);
      out.writeUTF(gateway);
      out.writeInt((int) IpAddresses.toLong(egressIP));
      out.writeInt((int) IpAddresses.toLong(pod));
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
    return signed.seal(bytes.toByteArray());
  }

  /** The message, or empty when the MAC does not match (forged, another key) or it does not parse. */
  static Optional<SourceMessage> decode(Signed signed, byte[] data, int length) {
    DataInputStream opened = signed.open(data, length, VERSION, 2).orElse(null);
    if (opened == null) {
      return Optional.empty();
    }
    try (var in = opened) {
      int kind = in.readUnsignedByte();
      if (kind >= Kind.values().length) {
        return Optional.empty();
      }
      var m = new SourceMessage(Kind.values()[kind], in.readUTF(), in.readLong(), in.readLong(), in.readBoolean(),
          in.readUTF(), IpAddresses.fromLong(in.readInt()), IpAddresses.fromLong(in.readInt()));
      return in.available() == 0 ? Optional.of(m) : Optional.empty();
    } catch (IOException e) {
      return Optional.empty();
    }
  }
}
