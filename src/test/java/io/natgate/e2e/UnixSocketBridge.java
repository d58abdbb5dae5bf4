package io.natgate.e2e;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;

/** Serves a Unix socket file and forwards each connection to a TCP address of this (the root) network namespace. */
final class UnixSocketBridge implements AutoCloseable {
  private final ServerSocketChannel server;
  private final Path path;

  UnixSocketBridge(Path path, String host, int port) throws IOException {
    this.path = path;
    Files.deleteIfExists(path);
    server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
    server.bind(UnixDomainSocketAddress.of(path));
    Thread accept = new Thread(() -> {
      while (server.isOpen()) {
        try {
          SocketChannel client = server.accept();
          SocketChannel upstream = SocketChannel.open(new InetSocketAddress(host, port));
          pump(client, upstream);
          pump(upstream, client);
        } catch (IOException e) {
          // closed
        }
      }
    }, "unix-bridge");
    accept.setDaemon(true);
    accept.start();
  }

  private static void pump(SocketChannel from, SocketChannel to) {
    Thread t = new Thread(() -> {
      ByteBuffer buffer = ByteBuffer.allocate(65536);
      try {
        while (from.read(buffer) >= 0) {
          buffer.flip();
          while (buffer.hasRemaining()) {
            to.write(buffer);
          }
          buffer.clear();
        }
      } catch (IOException e) {
        // either side closed
      } finally {
        try {
          from.close();
          to.close();
        } catch (IOException e) {
          // already closed
        }
      }
    }, "unix-bridge-pump");
    t.setDaemon(true);
    t.start();
  }

  @Override
  public void close() throws IOException {
    server.close();
    Files.deleteIfExists(path);
  }
}
