package io.natgate.connlog;

import com.sun.jna.LastErrorException;
import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import io.natgate.LibC;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A netlink socket subscribed to the kernel's conntrack NEW and DESTROY events (ctnetlink), through libc with JNA:
 * Java has no AF_NETLINK. Its receive buffer is the kernel's room for a burst the reader has not taken yet; when it
 * overflows, the kernel drops events and the next {@link #receive} says so. (The conntrack CLI, conntrack-tools
 * 1.4.7, sets its --buffer-size on another of its sockets, and filters by mark in user space: the event socket keeps
 * the 208 KiB default, about 160 events.) A socket filter ({@link #markFilter}) lets the kernel itself drop the
 * events of connections without the log's mark: they are never queued, copied or read.
 */
final class EventSocket implements AutoCloseable {
  private static final int AF_NETLINK = 16;
  private static final int NETLINK_NETFILTER = 12;
  private static final int SO_RCVTIMEO = 20;
  private static final int SO_RCVBUFFORCE = 33;
  private static final int SO_ATTACH_FILTER = 26;
  /** The socket's memory counters, u32[SK_MEMINFO_VARS]; SK_MEMINFO_DROPS (8) counts what the kernel dropped. */
  private static final int SO_MEMINFO = 55;
  private static final int SK_MEMINFO_DROPS = 8;
  private static final int MSG_DONTWAIT = 0x40;
  /** NFNLGRP_CONNTRACK_NEW (1) and NFNLGRP_CONNTRACK_DESTROY (3), as the bind() group mask. */
  private static final int GROUPS = 1 | 1 << 2;
  private static final int EAGAIN = 11;
  private static final int EINTR = 4;
  private static final int ENOBUFS = 105;


  /**
   * What one {@link #receive} got: a datagram (a view of the socket's buffer, valid until its next receive), nothing
   * yet (timeout), or word that the kernel dropped events.
   */
  record Received(ByteBuffer datagram, boolean overflowed) {
  }

  private final int fd;
  /** A second socket, for dump requests: their answers must not mix with the events. */
  private final int dumps;
  private final Receiver events = new Receiver();
  private final Receiver answers = new Receiver();
  private int sequence;

  /**
   * @param netns a network namespace file (/proc/PID/ns/net) to open the socket in, or null for the caller's own;
   *              the calling thread moves into it
   * @param mark  only events of connections with one of these conntrack mark bits reach the socket
   */
  EventSocket(String netns, int receiveBufferBytes, int mark) {
    fd = netfilterSocket(netns, receiveBufferBytes, GROUPS);
    try {
      attach(fd, markFilter(mark));
      dumps = LibC.socket(AF_NETLINK, LibC.SOCK_RAW | LibC.SOCK_CLOEXEC, NETLINK_NETFILTER);
    } catch (LastErrorException e) {
      LibC.close(fd);
      throw e;
    }
  }

  /**
   * A classic BPF program that passes a ctnetlink message only when its CTA_MARK has one of {@code mark}'s bits (the
   * kernel leaves the attribute out when the mark is 0). It finds the attribute with the kernel's netlink-attribute
   * helper (SKF_AD_NLATTR, as libnetfilter_conntrack's filters do): instructions of 8 bytes, code, jt, jf, k.
   */
  static ByteBuffer markFilter(int mark) {
    int ctaMark = 8;
    int skfAdNlattr = -0x1000 + 12; // SKF_AD_OFF + SKF_AD_NLATTR
    ByteBuffer p = ByteBuffer.allocate(9 * 8).order(ByteOrder.nativeOrder());
    instruction(p, 0x00, 0, 0, 16 + 4); // ld #20: the attributes follow nlmsghdr and nfgenmsg
    instruction(p, 0x01, 0, 0, ctaMark); // ldx #CTA_MARK
    instruction(p, 0x20, 0, 0, skfAdNlattr); // ld #nla: A = offset of the attribute X from offset A, or 0
    instruction(p, 0x15, 3, 0, 0); // jeq #0: no mark, drop
    instruction(p, 0x07, 0, 0, 0); // tax
    instruction(p, 0x40, 0, 0, 4); // ld [x + 4]: the mark, big-endian (a load's order)
    instruction(p, 0x45, 1, 0, mark); // jset #mark: pass
    instruction(p, 0x06, 0, 0, 0); // ret #0: drop
    instruction(p, 0x06, 0, 0, -1); // ret #-1: the whole message
    return p.flip();
  }

  private static void instruction(ByteBuffer program, int code, int jt, int jf, int k) {
    program.putShort((short) code).put((byte) jt).put((byte) jf).putInt(k);
  }

  /** Attaches a classic BPF program ({@code struct sock_filter[]}) to socket {@code fd}. */
  static void attach(int fd, ByteBuffer program) {
    int length = program.remaining();
    try (Memory code = new Memory(length); Memory fprog = new Memory(16)) {
      code.write(0, program.array(), program.arrayOffset() + program.position(), length);
      fprog.setShort(0, (short) (length / 8)); // struct sock_fprog: len, then (aligned) the pointer
      fprog.setPointer(8, code);
      LibC.setsockopt(fd, LibC.SOL_SOCKET, SO_ATTACH_FILTER, fprog, 16); // the kernel copies the program
    }
  }

  /** A receive buffer in native memory and a view of it that Java reads without copying. */
  static final class Receiver {
    private final Memory memory = new Memory(1 << 16);
    private final ByteBuffer view = memory.getByteBuffer(0, memory.size());

    /** One datagram of a netlink socket with a receive timeout, nothing (timeout), or word of an overflow. */
    Received receive(int fd, int flags) {
      int n = LibC.recv(fd, memory, memory.size(), flags);
      if (n >= 0) {
        return new Received(view.duplicate().limit(n), false);
      }
      int error = Native.getLastError();
      return switch (error) {
        case ENOBUFS -> new Received(null, true);
        case EAGAIN, EINTR -> new Received(null, false);
        default -> throw new LastErrorException(error);
      };
    }
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
    int fd = LibC.socket(AF_NETLINK, LibC.SOCK_RAW | LibC.SOCK_CLOEXEC, NETLINK_NETFILTER);
    try {
      LibC.setsockopt(fd, LibC.SOL_SOCKET, SO_RCVBUFFORCE, nativeInts(receiveBufferBytes), 4);
      ByteBuffer timeout = ByteBuffer.allocate(16).order(ByteOrder.nativeOrder()).putLong(0).putLong(500_000);
      LibC.setsockopt(fd, LibC.SOL_SOCKET, SO_RCVTIMEO, timeout.array(), 16);
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
   * Asks the kernel for the connections whose mark, masked with {@code mark}, is {@code ~mark}: none can be. Going
   * through the table the kernel removes the connections that expired (it does so before it applies the filter; their
   * DESTROY events follow on the event socket), and it answers with nothing but the end of the dump. Otherwise only
   * its garbage collection removes them, which takes up to minutes on a busy table. (Asking for the marked ones, as
   * before, copied every live marked connection to the agent on each sweep: thousands under load.)
   */
  void sweep(int mark) {
    ByteBuffer request = ByteBuffer.allocate(36).order(ByteOrder.nativeOrder());
    request.putInt(36).putShort((short) (1 << 8 | 1)) // NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET
        .putShort((short) (0x1 | 0x300)).putInt(++sequence).putInt(0) // NLM_F_REQUEST | NLM_F_DUMP
        .put((byte) 2).put((byte) 0).putShort((short) 0); // nfgenmsg: AF_INET, version 0
    request.putShort((short) 8).putShort((short) 8).order(ByteOrder.BIG_ENDIAN).putInt(~mark) // CTA_MARK
        .order(ByteOrder.nativeOrder()).putShort((short) 8).putShort((short) 21) // CTA_MARK_MASK
        .order(ByteOrder.BIG_ENDIAN).putInt(mark);
    LibC.send(dumps, request.array(), 36, 0);
    while (true) {
      Received r = answers.receive(dumps, 0);
      if (r.datagram() == null) {
        if (r.overflowed()) {
          return; // the kernel went through the table all the same
        }
        continue;
      }
      ByteBuffer b = r.datagram().order(ByteOrder.nativeOrder());
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
    return events.receive(fd, 0);
  }

  /** Moves the calling thread into a network namespace (a /proc/PID/ns/net file). */
  static void enter(String netns) {
    int ns = LibC.open(netns, 0);
    try {
      LibC.setns(ns, LibC.CLONE_NEWNET);
    } finally {
      LibC.close(ns);
    }
  }

  /** What the kernel queued already, without waiting: nothing (no datagram, no overflow) once the queue is empty. */
  Received receiveQueued() {
    return events.receive(fd, MSG_DONTWAIT);
  }

  /**
   * Events the kernel dropped on this socket because its receive buffer was full (the socket's own count: exact,
   * where an overflow {@link #receive} reports only that some were).
   */
  long drops() {
    byte[] info = new byte[4 * 9];
    LibC.getsockopt(fd, LibC.SOL_SOCKET, SO_MEMINFO, info, new int[] {info.length});
    return Integer.toUnsignedLong(ByteBuffer.wrap(info).order(ByteOrder.nativeOrder()).getInt(4 * SK_MEMINFO_DROPS));
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
