package io.natgate.lab;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.natgate.testing.ControlPlane;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * A lab node's pod network as a kubelet's runtime runs it: a conflist of Debian's reference plugins (ptp with
 * host-local addresses from 198.19.&lt;node&gt;.100-199), then natgate-cni, run through libcni by cnitool in the node's
 * namespace, with the pod's name in CNI_ARGS as the kubelet puts it.
 */
public final class CniChain {
  /** Where Debian's containernetworking-plugins installs the reference plugins. */
  public static final Path REFERENCE_PLUGINS = Path.of("/usr/lib/cni");
  private static final ObjectMapper JSON = new ObjectMapper();

  private final NetworkLab lab;
  private final LabNode node;
  private final Path dir;
  private final String network;

  /** Writes the node's conflist under {@code dir}; natgate-cni asks the agent at {@code socket}. */
  public CniChain(NetworkLab lab, LabNode node, Path dir, Path socket) {
    this.lab = lab;
    this.node = node;
    this.dir = dir.resolve(node.name());
    this.network = lab.prefix() + "-pods";
    int i = node.index();
    String conflist = """
        {"cniVersion": "1.0.0", "name": "%s", "plugins": [
          {"type": "ptp", "ipMasq": false, "ipam": {"type": "host-local", "dataDir": "%s",
            "ranges": [[{"subnet": "198.19.%d.0/24", "rangeStart": "198.19.%d.100", "rangeEnd": "198.19.%d.199",
              "gateway": "198.19.%d.1"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
          {"type": "natgate-cni", "socket": "%s"}
        ]}
        """.formatted(network, this.dir.resolve("ipam"), i, i, i, i, socket);
    try {
      Files.createDirectories(this.dir.resolve("conf"));
      Files.writeString(this.dir.resolve("conf").resolve(network + ".conflist"), conflist);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Why the chain cannot run here (with "skipped"), or null; builds the plugin and cnitool when they are missing. */
  public static String unavailableReason() {
    if (!Files.isExecutable(REFERENCE_PLUGINS.resolve("ptp")) || !Files.isExecutable(REFERENCE_PLUGINS.resolve("host-local"))) {
      return "needs the CNI reference plugins in " + REFERENCE_PLUGINS
          + " (apt-get install containernetworking-plugins): skipped";
    }
    if (!Files.isExecutable(ControlPlane.tool("natgate-cni")) || !Files.isExecutable(ControlPlane.tool("cnitool"))) {
      try {
        Process make = new ProcessBuilder("make", "-s", "cni").directory(ControlPlane.repo().toFile())
            .redirectErrorStream(true).start();
        String out = new String(make.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!make.waitFor(300, TimeUnit.SECONDS) || make.exitValue() != 0) {
          return "could not build natgate-cni and cnitool (make cni): " + out.strip() + ": skipped";
        }
      } catch (IOException e) {
        return "could not build natgate-cni and cnitool (make cni, needs Go): " + e.getMessage() + ": skipped";
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return "interrupted: skipped";
      }
    }
    return null;
  }

  /** The outcome of one cnitool run: exit code, stdout (the result on ADD), stderr. */
  public record Outcome(int exit, String out, String err) {
    /** The pod's IPv4 address in an ADD result. */
    public String podIP() {
      try {
        for (JsonNode ip : JSON.readTree(out).path("ips")) {
          String address = ip.path("address").asText();
          return address.substring(0, address.indexOf('/'));
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      throw new IllegalStateException("no address in " + out);
    }
  }

  public Outcome add(String podNs, String namespace, String name) {
    return run("add", podNs, namespace, name);
  }

  public Outcome del(String podNs, String namespace, String name) {
    return run("del", podNs, namespace, name);
  }

  private Outcome run(String command, String podNs, String namespace, String name) {
    List<String> argv = new ArrayList<>(lab.nsCommandPrefix(node.ns()));
    argv.addAll(List.of(ControlPlane.tool("cnitool").toString(), command, network, "/var/run/netns/" + podNs));
    ProcessBuilder pb = new ProcessBuilder(argv);
    pb.environment().putAll(Map.of("CNI_PATH", REFERENCE_PLUGINS + ":" + ControlPlane.tool("natgate-cni").getParent(),
        "NETCONFPATH", dir.resolve("conf").toString(), "CNI_IFNAME", "eth0",
        "CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=" + namespace + ";K8S_POD_NAME=" + name));
    try {
      Process p = pb.start();
      var err = java.util.concurrent.CompletableFuture.supplyAsync(() -> read(p.getErrorStream()));
      String out = read(p.getInputStream());
      if (!p.waitFor(30, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new IllegalStateException("cnitool " + command + " timed out");
      }
      return new Outcome(p.exitValue(), out, err.join());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** Addresses host-local still has reserved for this node (none once every pod had its DEL). */
  public List<String> reserved() {
    Path ipam = dir.resolve("ipam").resolve(network);
    try (var files = Files.exists(ipam) ? Files.list(ipam) : java.util.stream.Stream.<Path>empty()) {
      return files.map(f -> f.getFileName().toString()).filter(f -> f.startsWith("198.")).sorted().toList();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static String read(java.io.InputStream in) {
    try (in) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    } catch (IOException e) {
      return e.toString();
    }
  }
}
