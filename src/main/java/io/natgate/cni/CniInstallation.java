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
 * Puts natgate-cni on the node: the binary into the CNI bin directory, and a conflist of natgate's own,
 * {@value #CONFLIST}, that the runtime uses instead of the network plugin's: the same network (its name, so IPAM
 * state is shared, and its plugins) with natgate-cni at the end. libcni and containerd take the first .conf,
 * .conflist or .json in byte order of the file names; "00-" sorts before the network plugins' own names (flannel's
 * 10-, Calico's 10-, Cilium's 05-), so the network plugin can rewrite its file when it starts (flannel does, on
 * every boot) without taking natgate-cni out of the chain. Checked again every 10 s: a changed network
 * configuration is copied anew. Removed on uninstall, never on a restart: a pod started while the agent restarts
 * must still wait for it.
 */
public final class CniInstallation implements AutoCloseable {
  public static final String TYPE = "natgate-cni";
  /** natgate's conflist; its name sorts before the network plugin's (see the class comment). */
  public static final String CONFLIST = "00-natgate.conflist";
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

  /** Installs the binary and natgate's conflist where either is missing or stale; logs what goes wrong (retried in 10 s). */
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
      Path own = confDir.resolve(CONFLIST);
      if (primary.get().getFileName().toString().compareTo(CONFLIST) < 0) {
        // The runtime uses that file, not natgate's; a meta plugin there (Multus) could delegate to natgate's copy
        // of its own configuration.
        Files.deleteIfExists(own);
        LOG.warnf("%s sorts before %s: the runtime uses it, and pods start without %s", primary.get(), CONFLIST, TYPE);
        return;
      }
      ObjectNode wanted = chained(unchainOlderAgents(primary.get()), socket);
      if (!Files.exists(own) || !wanted.equals(JSON.readTree(own.toFile()))) {
        write(own, wanted);
        LOG.infof("wrote %s: %s chained after %s", own, TYPE, primary.get().getFileName());
      }
    } catch (IOException | RuntimeException e) {
      LOG.warnf("could not install %s: %s", TYPE, e.getMessage());
    }
  }

  /** Uninstall: natgate's conflist goes first (no pod waits for natgate-cni any more), then the binary. */
  public void uninstall() {
    checker.shutdownNow();
    try {
      Files.deleteIfExists(confDir.resolve(CONFLIST));
      Optional<Path> primary = primary(confDir);
      if (primary.isPresent()) {
        unchainOlderAgents(primary.get());
      }
      Files.deleteIfExists(binDir.resolve(TYPE));
      LOG.infof("removed %s from %s and %s", TYPE, confDir, binDir);
    } catch (IOException | RuntimeException e) {
      LOG.errorf("could not remove %s: %s", TYPE, e.getMessage());
    }
  }

  /**
   * The network plugin's configuration; an entry that an older agent appended to its file (before natgate had a
   * conflist of its own) is taken out of the file, so that natgate-cni is never chained twice.
   */
  private static JsonNode unchainOlderAgents(Path primary) throws IOException {
    JsonNode conf = JSON.readTree(primary.toFile());
    if (conf.has("plugins")) {
      ObjectNode without = unchained(conf);
      if (!without.equals(conf)) {
        write(primary, without);
        LOG.infof("removed an older agent's %s entry from %s", TYPE, primary);
        return without;
      }
    }
    return conf;
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

  /**
   * The network plugin's file: the one libcni would load (first .conf, .conflist or .json by name) but natgate's.
   * Dot-files count: libcni (1.3) filters on the extension alone, so a runtime loads {@code .10-x.conflist} too.
   */
  static Optional<Path> primary(Path confDir) throws IOException {
    if (!Files.isDirectory(confDir)) {
      return Optional.empty();
    }
    try (Stream<Path> files = Files.list(confDir)) {
      return files.filter(f -> Files.isRegularFile(f) && !f.getFileName().toString().equals(CONFLIST)
          && Stream.of(".conf", ".conflist", ".json").anyMatch(f.getFileName().toString()::endsWith)).min(Comparator.comparing(f -> f.getFileName().toString()));
    }
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
