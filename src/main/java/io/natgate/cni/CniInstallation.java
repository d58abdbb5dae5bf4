package io.natgate.cni;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.jboss.logging.Logger;

/**
 * Puts natgate-cni on the node: the binary into the CNI bin directory, and an entry at the end of the plugins of the
 * conflist the runtime uses (the first in name order, as libcni picks it). Checked again every 10 s, since network
 * plugins rewrite their conflist when they restart. Removed on uninstall, never on a restart: a pod started while
 * the agent restarts must still wait for it.
 */
public final class CniInstallation implements AutoCloseable {
  public static final String TYPE = "natgate-cni";
  private static final Logger LOG = Logger.getLogger(CniInstallation.class);
  private static final ObjectMapper JSON = new ObjectMapper();

  private final Path plugin;
  private final Path binDir;
  private final Path confDir;
  private final String socket;
  private final ScheduledExecutorService checker = Executors.newSingleThreadScheduledExecutor(r -> {
    Thread t = new Thread(r, "natgate-cni-install");
    t.setDaemon(true);
    return t;
  });

  /**
   * @param plugin  the natgate-cni binary shipped in the agent's image
   * @param binDir  the node's CNI bin directory (mounted)
   * @param confDir the node's CNI configuration directory (mounted)
   * @param socket  the agent's socket as the node sees it (the plugin runs on the node)
   */
  public CniInstallation(Path plugin, Path binDir, Path confDir, String socket) {
    this.plugin = plugin;
    this.binDir = binDir;
    this.confDir = confDir;
    this.socket = socket;
  }

  public CniInstallation start() {
    checker.scheduleWithFixedDelay(this::ensure, 0, 10, TimeUnit.SECONDS);
    return this;
  }

  /** Installs the binary and chains it, if either is missing; logs what goes wrong (retried in 10 s). */
  void ensure() {
    try {
      Path target = binDir.resolve(TYPE);
      if (!Files.exists(target) || Files.mismatch(plugin, target) != -1) {
        Path tmp = binDir.resolve("." + TYPE + ".tmp");
        Files.copy(plugin, tmp, StandardCopyOption.REPLACE_EXISTING);
        Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rwxr-xr-x"));
        Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        LOG.infof("installed %s", target);
      }
      Optional<Path> primary = primary(confDir);
      if (primary.isEmpty()) {
        return; // the network plugin has not written its configuration yet
      }
      JsonNode conf = JSON.readTree(primary.get().toFile());
      ObjectNode wanted = chained(conf, socket);
      if (!wanted.equals(conf) || !primary.get().toString().endsWith(".conflist")) {
        Path list = primary.get().toString().endsWith(".conflist") ? primary.get()
            : confDir.resolve(baseName(primary.get()) + ".conflist");
        write(list, wanted);
        if (!list.equals(primary.get())) {
          Files.delete(primary.get()); // a single-plugin .conf became a list of the same name
        }
        LOG.infof("chained %s into %s", TYPE, list);
      }
    } catch (IOException | RuntimeException e) {
      LOG.warnf("could not install %s: %s", TYPE, e.getMessage());
    }
  }

  /** Uninstall: natgate-cni leaves the conflist first (no pod waits for it any more), then the bin directory. */
  public void uninstall() {
    checker.shutdownNow();
    try {
      Optional<Path> primary = primary(confDir);
      if (primary.isPresent() && primary.get().toString().endsWith(".conflist")) {
        JsonNode conf = JSON.readTree(primary.get().toFile());
        ObjectNode without = unchained(conf);
        if (!without.equals(conf)) {
          write(primary.get(), without);
        }
      }
      Files.deleteIfExists(binDir.resolve(TYPE));
      LOG.infof("removed %s from %s and %s", TYPE, confDir, binDir);
    } catch (IOException | RuntimeException e) {
      LOG.errorf("could not remove %s: %s", TYPE, e.getMessage());
    }
  }

  /** The configuration as a conflist whose last plugin is natgate-cni with this socket (pure). */
  static ObjectNode chained(JsonNode conf, String socket) {
    ObjectNode list = unchained(conf);
    ObjectNode entry = list.withArray("plugins").addObject();
    entry.put("type", TYPE);
    entry.put("socket", socket);
    return list;
  }

  /** The configuration as a conflist without natgate-cni (pure); a single-plugin .conf becomes a list of one. */
  static ObjectNode unchained(JsonNode conf) {
    ObjectNode list;
    if (conf.has("plugins")) {
      list = conf.deepCopy();
    } else {
      list = JSON.createObjectNode();
      list.set("cniVersion", conf.get("cniVersion"));
      list.set("name", conf.get("name"));
      ObjectNode single = conf.deepCopy();
      single.remove(List.of("cniVersion", "name"));
      list.putArray("plugins").add(single);
    }
    ArrayNode plugins = list.withArray("plugins");
    for (int i = plugins.size() - 1; i >= 0; i--) {
      if (TYPE.equals(plugins.get(i).path("type").asText())) {
        plugins.remove(i);
      }
    }
    return list;
  }

  /** The file libcni would load: the first .conf, .conflist or .json in name order. */
  static Optional<Path> primary(Path confDir) throws IOException {
    if (!Files.isDirectory(confDir)) {
      return Optional.empty();
    }
    try (Stream<Path> files = Files.list(confDir)) {
      return files.filter(f -> Files.isRegularFile(f) && Stream.of(".conf", ".conflist", ".json")
          .anyMatch(f.getFileName().toString()::endsWith)).min(Comparator.comparing(f -> f.getFileName().toString()));
    }
  }

  private static String baseName(Path p) {
    String name = p.getFileName().toString();
    return name.substring(0, name.lastIndexOf('.'));
  }

  /** Written beside and renamed over, so that the runtime never reads half a file. */
  private static void write(Path target, JsonNode conf) throws IOException {
    Path tmp = target.resolveSibling("." + target.getFileName() + ".natgate.tmp");
    Files.write(tmp, JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(conf));
    Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
  }

  @Override
  public void close() {
    checker.shutdownNow();
  }
}
