package io.natgate.dataplane;

import com.sun.jna.LastErrorException;
import io.natgate.LibC;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import org.jboss.logging.Logger;

/**
 * One gratuitous ARP for an egress IP, sent by the agent itself on the uplink (a packet socket, through libc with
 * JNA: Java has no AF_PACKET). A takeover's neighbours move the IP's entry to this node the moment it is sent, where
 * {@code arping} first has to start: 30-220 ms of a failover measured on the shared machine (docs/benchmarks.md).
 * {@code arping} still repeats it. The socket belongs to the network namespace of the thread that opens it: only for
 * an agent that runs in the node's own (the DaemonSet's host network, the lab agents' processes).
 */
public final class GratuitousArp implements ArpSender, AutoCloseable {
  private static final Logger LOG = Logger.getLogger(GratuitousArp.class);
  private static final int AF_PACKET = 17;
  private static final short ETH_P_ARP = 0x0806;
  private static final short ETH_P_IP = 0x0800;
  private static final int SIOCGIFINDEX = 0x8933;
  private static final int SIOCGIFHWADDR = 0x8927;
  private static final int IFREQ_SIZE = 40;
  private static final int SOCKADDR_LL_SIZE = 20;
  /** Ethernet header (14) and ARP for IPv4 over Ethernet (28); the NIC pads it to the minimum frame. */
  static final int FRAME_SIZE = 42;


  private final String uplink;
  private int fd = -1;

  /**
   * Opens the socket now: loading libc through JNA the first time takes 100-250 ms, which a takeover must not wait
   * for. One that cannot be opened is tried again at each send.
   */
  public GratuitousArp(String uplink) {
    this.uplink = uplink;
    try {
      open();
    } catch (LastErrorException | UnsatisfiedLinkError | NoClassDefFoundError e) {
      LOG.warnf("no socket for gratuitous ARP on %s (arping sends them): %s", uplink, e.getMessage());
    }
  }

  private synchronized void open() {
    if (fd < 0) {
      fd = LibC.socket(AF_PACKET, LibC.SOCK_RAW | LibC.SOCK_CLOEXEC, 0); // protocol 0: it receives nothing, only sends
    }
  }

  /** The interface's index and address are read at each send (they may change). */
  @Override
  public synchronized void send(String ip) {
    try {
      open();
      byte[] ifreq = ifreq(uplink);
      LibC.ioctl(fd, SIOCGIFINDEX, ifreq);
      int index = ByteBuffer.wrap(ifreq, 16, 4).order(ByteOrder.nativeOrder()).getInt();
      ifreq = ifreq(uplink);
      LibC.ioctl(fd, SIOCGIFHWADDR, ifreq);
      byte[] mac = new byte[6];
      System.arraycopy(ifreq, 18, mac, 0, 6);
      byte[] frame = frame(mac, InetAddress.getByName(ip).getAddress());
      LibC.sendto(fd, frame, frame.length, 0, broadcastTo(index), SOCKADDR_LL_SIZE);
    } catch (LastErrorException | UnknownHostException | UnsatisfiedLinkError | NoClassDefFoundError e) {
      LOG.warnf("gratuitous ARP for %s on %s not sent (arping sends it): %s", ip, uplink, e.getMessage());
    }
  }

  /**
   * The frame (pure): broadcast, an ARP request from {@code mac} for {@code ip} asking for {@code ip} itself, as
   * {@code arping -U} sends it. Linux neighbours take a gratuitous ARP over an entry they have, even one confirmed
   * within its lock time.
   */
  static byte[] frame(byte[] mac, byte[] ip) {
    ByteBuffer b = ByteBuffer.allocate(FRAME_SIZE).order(ByteOrder.BIG_ENDIAN);
    b.put(new byte[] {-1, -1, -1, -1, -1, -1}).put(mac).putShort(ETH_P_ARP);
    b.putShort((short) 1).putShort(ETH_P_IP).put((byte) 6).put((byte) 4).putShort((short) 1); // Ethernet, IPv4, request
    b.put(mac).put(ip).put(new byte[6]).put(ip);
    return b.array();
  }

  private static byte[] ifreq(String name) {
    byte[] ifreq = new byte[IFREQ_SIZE];
    byte[] n = name.getBytes(StandardCharsets.US_ASCII);
    System.arraycopy(n, 0, ifreq, 0, Math.min(n.length, 15));
    return ifreq;
  }

  /** struct sockaddr_ll toward the Ethernet broadcast address on interface {@code index}. */
  private static byte[] broadcastTo(int index) {
    ByteBuffer b = ByteBuffer.allocate(SOCKADDR_LL_SIZE).order(ByteOrder.nativeOrder());
    b.putShort((short) AF_PACKET);
    b.order(ByteOrder.BIG_ENDIAN).putShort(ETH_P_ARP);
    b.order(ByteOrder.nativeOrder()).putInt(index).putShort((short) 1).put((byte) 0).put((byte) 6); // ARPHRD_ETHER
    b.put(new byte[] {-1, -1, -1, -1, -1, -1, 0, 0});
    return b.array();
  }

  @Override
  public synchronized void close() {
    if (fd >= 0) {
      try {
        LibC.close(fd);
      } catch (LastErrorException e) {
        LOG.debugf("closing the gratuitous ARP socket: %s", e.getMessage());
      }
      fd = -1;
    }
  }
}
