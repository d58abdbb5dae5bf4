package io.natgate.connlog;

import java.io.File;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.logging.ErrorManager;
import java.util.logging.Formatter;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import org.jboss.logmanager.handlers.OutputStreamHandler;
import org.jboss.logmanager.handlers.SizeRotatingFileHandler;

/**
 * Where the lines go: the agent's standard output, or a file rotated by size (JBoss LogManager's handlers, which
 * Quarkus ships). A failed write (full disk, closed stdout) is reported by {@link #write}'s result, never thrown.
 */
final class Sink implements AutoCloseable {
  private final Handler handler;
  private volatile boolean failed;

  private Sink(Handler handler) {
    this.handler = handler;
    handler.setFormatter(new Formatter() {
      @Override
      public String format(LogRecord r) {
        return r.getMessage();
      }
    });
    handler.setErrorManager(new ErrorManager() {
      @Override
      public void error(String msg, Exception ex, int code) {
        failed = true;
      }
    });
  }

  /** Our own stream on file descriptor 1, buffered: flushed when the queue is drained, not per line. */
  static Sink stdout() {
    return of(new FileOutputStream(FileDescriptor.out));
  }

  static Sink of(OutputStream out) {
    var h = new OutputStreamHandler();
    h.setOutputStream(out);
    h.setAutoFlush(false);
    return new Sink(h);
  }

  /** {@code file}, moved to file.1 (file.1 to file.2, ...) when it reaches {@code maxBytes}; keeps {@code keep} old. */
  static Sink rotatingFile(Path file, long maxBytes, int keep) {
    try {
      if (file.getParent() != null) {
        Files.createDirectories(file.getParent());
      }
      var h = new SizeRotatingFileHandler(new File(file.toString()), true);
      h.setRotateSize(maxBytes);
      h.setMaxBackupIndex(keep);
      h.setAutoFlush(false);
      return new Sink(h);
    } catch (IOException e) {
      throw new UncheckedIOException("connection log file " + file, e);
    }
  }

  /** False when the lines (each ending with a line feed) could not be written. */
  boolean write(String lines) {
    failed = false;
    handler.publish(new LogRecord(Level.INFO, lines));
    return !failed;
  }

  /** False when what was buffered could not be written. */
  boolean flush() {
    failed = false;
    handler.flush();
    return !failed;
  }

  @Override
  public void close() {
    handler.close();
  }
}
