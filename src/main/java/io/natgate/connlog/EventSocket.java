package io.natgate.connlog;

import com.sun.jna.LastErrorException;
import com.sun.jna.Native;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A netlink socket subscribed to the kernel's conntrack NEW and DESTROY events (ctnetlink), through libc with JNA:
 * Java has no AF_NETLINK. Its receive buffer is the kernel's room for a burst the reader has not taken yet; when it
 * overflows, the kernel drops events and the next {@link #receive} says so. (The conntrack CLI, conntrack-tools
 * 1.4.7, sets its --buffer-size on another of its sockets, and filters by mark in user space: the event socket keeps
 * the 208 KiB default, about 160 events.)
 */
final class EventSocket implements AutoCloseable {
  private static final int AF_NETLINK = 16;
  private static final int SOCK_RAW = 3;
  private static final int SOCK_CLOEXEC = 0x80000;
  private static final int NETLINK_NETFILTER = 12;
  private static final int SOL_SOCKET = 1;
  private static final int SO_RCVTIMEO = 20;
  private static final int SO_RCVBUFFORCE = 33;
  /** The socket's memory counters, u32[SK_MEMINFO_VARS]; SK_MEMINFO_DROPS (8) counts what the kernel dropped. */
  private static final int SO_MEMINFO = 55;
  private static final int SK_MEMINFO_DROPS = 8;
  private static final int MSG_DONTWAIT = 0x40;
  /** NFNLGRP_CONNTRACK_NEW (1) and NFNLGRP_CONNTRACK_DESTROY (3), as the bind() group mask. */
  private static final int GROUPS = 1 | 1 << 2;
  private static final int EAGAIN = 11;
  private static final int EINTR = 4;
  private static final int ENOBUFS = 105;
  private static final int CLONE_NEWNET = 0x40000000;

  static {
    // JNA unpacks its native part; the agent's root file system is read-only, its /tmp is not.
    if (System.getProperty("jna.tmpdir") == null) {
      System.setProperty("jna.tmpdir", System.getProperty("java.io.tmpdir"));
    }
  }

  /** libc, directly mapped: a call costs far less than through a JNA interface proxy (one recv per event). */
  static final class LibC {
    static {
      Native.register("c");
    }

    private LibC() {
    }

    static native int socket(int domain, int type, int protocol) throws LastErrorException;

    static native int setsockopt(int fd, int level, int name, byte[] value, int length) throws LastErrorException;

    static native int getsockopt(int fd, int level, int name, byte[] value, int[] length) throws LastErrorException;

    static native int bind(int fd, byte[] address, int length) throws LastErrorException;

    static native int recv(int fd, byte[] buffer, long length, int flags) throws LastErrorException;

    static native int send(int fd, byte[] buffer, long length, int flags) throws LastErrorException;

    static native int open(String path, int flags) throws LastErrorException;

    static native int setns(int fd, int type) throws LastErrorException;

    static native int close(int fd) throws LastErrorException;
  }

  /** What one {@link #receive} got: a datagram, nothing yet (timeout), or word that the kernel dropped events. */
  record Received(ByteBuffer datagram, boolean overflowed) {
  }

  private final int fd;
  /** A second socket, for dump requests: their answers must not mix with the events. */
  private final int dumps;
  private final byte[] buffer = new byte[1 << 16];
  private final byte[] dumpBuffer = new byte[1 << 16];
  private int sequence;

  /**
   * @param netns a network namespace file (/proc/PID/ns/net) to open the socket in, or null for the caller's own;
   *              the calling thread moves into it
   */
  EventSocket(String netns, int receiveBufferBytes) {
    fd = netfilterSocket(netns, receiveBufferBytes, GROUPS);
    dumps = LibC.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  }

  /**
   * A netfilter netlink socket in {@code netns} (null: the caller's), bound to multicast {@code groups}, its receive
   * buffer forced to {@code receiveBufferBytes} (the kernel's room for a burst), waking up twice a second so that its
   * reader can notice it should stop.
   */
  static int netfilterSocket(String netns, int receiveBufferBytes, int groups) {
    if (netns != null) {
      enter(netns);
    }
    int fd = LibC.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    try {
      LibC.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, nativeInts(receiveBufferBytes), 4);
      ByteBuffer timeout = ByteBuffer.allocate(16).order(ByteOrder.nativeOrder()).putLong(0).putLong(500_000);
      LibC.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, timeout.array(), 16);
      ByteBuffer address = ByteBuffer.allocate(12).order(ByteOrder.nativeOrder())
          .putShort((short) AF_NETLINK).putShort((short) 0).putInt(0).putInt(groups);
      LibC.bind(fd, address.array(), 12);
      return fd;
    } catch (LastErrorException e) {
      LibC.close(fd);
      throw e;
    }
  }

  /**
   * Asks the kernel for its connections with {@code mark}, and reads the answer to its end. The answer does not
   * matter: going through the table, the kernel removes the connections that expired (their DESTROY events follow on
   * the event socket). Otherwise only its garbage collection does, which takes up to minutes on a busy table.
   */
  void sweep(int mark) {
    ByteBuffer request = ByteBuffer.allocate(36).order(ByteOrder.nativeOrder());
    request.putInt(36).putShort((short) (1 << 8 | 1)) // NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET
        .putShort((short) (0x1 | 0x300)).putInt(++sequence).putInt(0) // NLM_F_REQUEST | NLM_F_DUMP
        .put((byte) 2).put((byte) 0).putShort((short) 0); // nfgenmsg: AF_INET, version 0
    request.putShort((short) 8).putShort((short) 8).order(ByteOrder.BIG_ENDIAN).putInt(mark) // CTA_MARK
        .order(ByteOrder.nativeOrder()).putShort((short) 8).putShort((short) 21) // CTA_MARK_MASK
        .order(ByteOrder.BIG_ENDIAN).putInt(mark);
    LibC.send(dumps, request.array(), 36, 0);
    while (true) {
      int n = LibC.recv(dumps, dumpBuffer, dumpBuffer.length, 0);
      ByteBuffer b = ByteBuffer.wrap(dumpBuffer, 0, n).order(ByteOrder.nativeOrder());
      while (b.remaining() >= 16) {
        int at = b.position();
        int type = Short.toUnsignedInt(b.getShort(at + 4));
        if (type == 3 || type == 2) { // NLMSG_DONE, NLMSG_ERROR
          return;
        }
        b.position(at + ((b.getInt(at) + 3) & ~3));
      }
    }
  }

  /** Blocks up to half a second. */
  Received receive() {
    return receive(fd, buffer, 0);
  }

  /** Moves the calling thread into a network namespace (a /proc/PID/ns/net file). */
  static void enter(String netns) {
    int ns = LibC.open(netns, 0);
    try {
      LibC.setns(ns, CLONE_NEWNET);
    } finally {
      LibC.close(ns);
    }
  }

  /** What the kernel queued already, without waiting: nothing (no datagram, no overflow) once the queue is empty. */
  Received receiveQueued() {
    return receive(fd, buffer, MSG_DONTWAIT);
  }

  /**
   * Events the kernel dropped on this socket because its receive buffer was full (the socket's own count: exact,
   * where an overflow {@link #receive} reports only that some were).
   */
  long drops() {
    byte[] info = new byte[4 * 9];
    LibC.getsockopt(fd, SOL_SOCKET, SO_MEMINFO, info, new int[] {info.length});
    return Integer.toUnsignedLong(ByteBuffer.wrap(info).order(ByteOrder.nativeOrder()).getInt(4 * SK_MEMINFO_DROPS));
  }

  /** One datagram of a netlink socket with a receive timeout, nothing (timeout), or word of an overflow. */
  static Received receive(int fd, byte[] buffer, int flags) {
    try {
      int n = LibC.recv(fd, buffer, buffer.length, flags);
      return new Received(ByteBuffer.wrap(buffer, 0, n).slice(), false);
    } catch (LastErrorException e) {
      return switch (e.getErrorCode()) {
        case ENOBUFS -> new Received(null, true);
        case EAGAIN, EINTR -> new Received(null, false);
        default -> throw e;
      };
    }
  }

  static byte[] nativeInts(int value) {
    return ByteBuffer.allocate(4).order(ByteOrder.nativeOrder()).putInt(value).array();
  }

  @Override
  public void close() {
    LibC.close(fd);
    LibC.close(dumps);
  }
}
