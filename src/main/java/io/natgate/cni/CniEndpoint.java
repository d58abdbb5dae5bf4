package io.natgate.cni;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.jboss.logging.Logger;

/**
 * The Unix socket that the natgate-cni plugin (src/cni) asks: one line of JSON each way per connection. Only root
 * on the node can connect (mode 0600): an answer changes the node's egress sets.
 */
public final class CniEndpoint implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(CniEndpoint.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  /** Longer lines are not requests of the plugin's. */
  private static final int MAX_LINE = 64 * 1024;

  /** What the plugin sends (src/cni/main.go, Request). */
  @JsonIgnoreProperties(ignoreUnknown = true)
  public record Request(String command, String containerID, String namespace, String name, String ip) {
  }

  /** What the plugin reads (src/cni/main.go, Answer): the selecting gateways, or why ADD must fail. */
  @JsonInclude(JsonInclude.Include.NON_NULL)
  public record Answer(List<LocalDecisions.Selection> gateways, String error) {
    public static Answer refused(String error) {
      return new Answer(null, error);
    }
  }

  /** Decides one request; may block until the kernel matches the answer. */
  public interface Handler {
    Answer handle(Request request);
  }

  private final Path path;
  private final Handler handler;
  private final ServerSocketChannel server;
  private final ExecutorService connections = Executors.newCachedThreadPool(r -> {
    Thread t = new Thread(r, "natgate-cni-request");
    t.setDaemon(true);
    return t;
  });

  /** Listens at {@code path} (replacing a socket a previous agent left there). */
  public CniEndpoint(Path path, Handler handler) throws IOException {
    this.path = path;
    this.handler = handler;
    Files.createDirectories(path.getParent());
    Files.deleteIfExists(path);
    server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
    server.bind(UnixDomainSocketAddress.of(path));
    Files.setPosixFilePermissions(path, PosixFilePermissions.fromString("rw-------"));
    Thread accept = new Thread(this::acceptLoop, "natgate-cni-accept");
    accept.setDaemon(true);
    accept.start();
    LOG.infof("CNI endpoint listening at %s", path);
  }

  private void acceptLoop() {
    while (server.isOpen()) {
      try {
        SocketChannel c = server.accept();
        connections.execute(() -> serve(c));
      } catch (IOException e) {
        if (server.isOpen()) {
          LOG.warnf("CNI endpoint: %s", e.getMessage());
        }
      }
    }
  }

  private void serve(SocketChannel c) {
    try (c; var in = new BufferedReader(new InputStreamReader(Channels.newInputStream(c), StandardCharsets.UTF_8));
        OutputStream out = Channels.newOutputStream(c)) {
      Answer answer;
      try {
        String line = readLine(in);
        Request request = JSON.readValue(line, Request.class);
        answer = valid(request) ? handler.handle(request)
            : Answer.refused("a request needs command (ADD, DEL, CHECK), containerID, namespace and name");
      } catch (IOException | RuntimeException e) {
        answer = Answer.refused("bad request: " + e.getMessage());
      }
      out.write(JSON.writeValueAsBytes(answer));
      out.write('\n');
    } catch (IOException e) {
      LOG.debugf("CNI endpoint: the plugin went away: %s", e.getMessage());
    }
  }

  private static boolean valid(Request r) {
    return r != null && List.of("ADD", "DEL", "CHECK").contains(r.command()) && r.containerID() != null
        && r.namespace() != null && r.name() != null;
  }

  private static String readLine(BufferedReader in) throws IOException {
    var line = new StringBuilder();
    for (int ch = in.read(); ch != '\n'; ch = in.read()) {
      if (ch < 0 || line.length() > MAX_LINE) {
        throw new IOException(ch < 0 ? "no complete line" : "line too long");
      }
      line.append((char) ch);
    }
    return line.toString();
  }

  @Override
  public void close() {
    try {
      server.close();
      Files.deleteIfExists(path);
    } catch (IOException e) {
      LOG.warnf("CNI endpoint: %s", e.getMessage());
    }
    connections.shutdownNow();
  }
}
