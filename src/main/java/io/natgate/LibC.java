package io.natgate;

import com.sun.jna.LastErrorException;
import com.sun.jna.Native;
import com.sun.jna.Pointer;

/**
 * The libc calls the agent makes through JNA, for what Java has no API for: packet and netlink sockets, and moving a
 * thread into another network namespace. Directly mapped (static natives): a call costs far less than through a JNA
 * interface proxy, which matters for the connection log's one receive per event. One mapping for the whole agent:
 * loading it the first time takes 100-250 ms.
 */
public final class LibC {
  public static final int SOCK_RAW = 3;
  public static final int SOCK_CLOEXEC = 0x80000;
  public static final int SOL_SOCKET = 1;
  public static final int CLONE_NEWNET = 0x40000000;

  static {
    // JNA unpacks its native part; the agent's root file system is read-only, its /tmp is not.
    if (System.getProperty("jna.tmpdir") == null) {
      System.setProperty("jna.tmpdir", System.getProperty("java.io.tmpdir"));
    }
    Native.register("c");
  }

  private LibC() {
  }

  public static native int socket(int domain, int type, int protocol) throws LastErrorException;

  public static native int bind(int fd, byte[] address, int length) throws LastErrorException;

  public static native int setsockopt(int fd, int level, int name, byte[] value, int length) throws LastErrorException;

  public static native int setsockopt(int fd, int level, int name, Pointer value, int length)
      throws LastErrorException;

  public static native int getsockopt(int fd, int level, int name, byte[] value, int[] length)
      throws LastErrorException;

  public static native int ioctl(int fd, long request, byte[] ifreq) throws LastErrorException;

  public static native int send(int fd, byte[] buffer, long length, int flags) throws LastErrorException;

  public static native long sendto(int fd, byte[] buffer, long length, int flags, byte[] address, int addressLength)
      throws LastErrorException;

  public static native int recv(int fd, byte[] buffer, long length, int flags) throws LastErrorException;

  /**
   * Into native memory: a byte[] would be copied in and out whole by JNA on every call. No exception on failure
   * (an empty queue is the common case): -1, and the error is {@link Native#getLastError}.
   */
  public static native int recv(int fd, Pointer buffer, long length, int flags);

  public static native int open(String path, int flags) throws LastErrorException;

  public static native int setns(int fd, int type) throws LastErrorException;

  public static native int close(int fd) throws LastErrorException;
}
