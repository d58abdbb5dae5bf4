package io.natgate.cni;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CniInstallationTest {
  static final ObjectMapper JSON = new ObjectMapper();
  static final String SOCKET = "/run/natgate/cni.sock";
  static final String CALICO = """
      {"name": "k8s-pod-network", "cniVersion": "0.4.0", "plugins": [
        {"type": "calico", "ipam": {"type": "calico-ipam"}},
        {"type": "portmap", "snat": true, "capabilities": {"portMappings": true}}]}""";

  static JsonNode json(String text) throws Exception {
    return JSON.readTree(text);
  }

  @Test
  void chainsAtTheEndOnceAndUnchainsToTheOriginal() throws Exception {
    JsonNode original = json(CALICO);
    JsonNode chained = CniInstallation.chained(original, SOCKET);
    assertThat(chained.path("plugins")).hasSize(3);
    assertThat(chained.path("plugins").get(2)).isEqualTo(json("{\"type\":\"natgate-cni\",\"socket\":\"" + SOCKET + "\"}"));
    assertThat(chained.path("plugins").get(0)).isEqualTo(original.path("plugins").get(0));
    assertThat(CniInstallation.chained(chained, SOCKET)).isEqualTo(chained);
    assertThat(CniInstallation.unchained(chained)).isEqualTo(original);
  }

  @Test
  void aSinglePluginConfBecomesAListOfIt() throws Exception {
    JsonNode conf = json("{\"cniVersion\":\"1.0.0\",\"name\":\"kindnet\",\"type\":\"ptp\",\"ipMasq\":false}");
    JsonNode chained = CniInstallation.chained(conf, SOCKET);
    assertThat(chained.path("name").asText()).isEqualTo("kindnet");
    assertThat(chained.path("cniVersion").asText()).isEqualTo("1.0.0");
    assertThat(chained.path("plugins").get(0)).isEqualTo(json("{\"type\":\"ptp\",\"ipMasq\":false}"));
    assertThat(chained.path("plugins").get(1).path("type").asText()).isEqualTo("natgate-cni");
  }

  @Test
  void writesItsOwnConflistFirstInNameOrderAndLeavesTheNetworkPluginsFileAlone(@TempDir Path dir) throws Exception {
    Path plugin = Files.writeString(dir.resolve("natgate-cni"), "binary v1");
    Path bin = Files.createDirectories(dir.resolve("bin"));
    Path conf = Files.createDirectories(dir.resolve("net.d"));
    Path calico = Files.writeString(conf.resolve("10-calico.conflist"), CALICO);
    Path other = Files.writeString(conf.resolve("99-loopback.conf"), "{\"cniVersion\":\"0.3.1\",\"name\":\"lo\",\"type\":\"loopback\"}");
    Path own = conf.resolve(CniInstallation.CONFLIST);
    var installation = new CniInstallation(plugin, bin, conf, SOCKET);

    installation.ensure();
    assertThat(bin.resolve("natgate-cni")).hasContent("binary v1").isExecutable();
    assertThat(json(Files.readString(own))).isEqualTo(CniInstallation.chained(json(CALICO), SOCKET));
    assertThat(json(Files.readString(own)).path("name").asText()).as("the same network: IPAM state shared")
        .isEqualTo("k8s-pod-network");
    assertThat(calico).hasContent(CALICO);
    assertThat(other).hasContent("{\"cniVersion\":\"0.3.1\",\"name\":\"lo\",\"type\":\"loopback\"}");
    try (var files = Files.list(conf)) {
      assertThat(files.map(p -> p.getFileName().toString()).sorted().findFirst()).as("the file libcni loads")
          .contains(CniInstallation.CONFLIST);
    }
    assertThat(CniInstallation.primary(conf)).as("its own file is never taken for the network's").contains(calico);
    long written = Files.getLastModifiedTime(own).toMillis();
    Thread.sleep(20);
    installation.ensure();
    assertThat(Files.getLastModifiedTime(own).toMillis()).as("nothing rewritten when in place").isEqualTo(written);
    assertThat(json(Files.readString(own)).path("plugins")).as("chained once").hasSize(3);

    // The network plugin restarts and writes a changed configuration; a new image brings a new binary.
    String changed = CALICO.replace("\"snat\": true", "\"snat\": false");
    Files.writeString(calico, changed);
    Files.writeString(plugin, "binary v2");
    installation.ensure();
    assertThat(json(Files.readString(own))).isEqualTo(CniInstallation.chained(json(changed), SOCKET));
    assertThat(calico).hasContent(changed);
    assertThat(bin.resolve("natgate-cni")).hasContent("binary v2");

    installation.uninstall();
    assertThat(calico).hasContent(changed);
    assertThat(bin.resolve("natgate-cni")).doesNotExist();
    try (var left = Files.list(conf)) {
      assertThat(left.map(p -> p.getFileName().toString())).containsExactlyInAnyOrder("10-calico.conflist",
          "99-loopback.conf");
    }
  }

  @Test
  void takesAnOlderAgentsEntryOutOfTheNetworkPluginsFile(@TempDir Path dir) throws Exception {
    Path plugin = Files.writeString(dir.resolve("natgate-cni"), "binary");
    Path conf = Files.createDirectories(dir.resolve("net.d"));
    Path calico = conf.resolve("10-calico.conflist");
    Files.write(calico, JSON.writeValueAsBytes(CniInstallation.chained(json(CALICO), SOCKET)));
    var installation = new CniInstallation(plugin, Files.createDirectories(dir.resolve("bin")), conf, SOCKET);

    installation.ensure();
    assertThat(json(Files.readString(calico))).isEqualTo(json(CALICO));
    JsonNode own = json(Files.readString(conf.resolve(CniInstallation.CONFLIST)));
    assertThat(own).isEqualTo(CniInstallation.chained(json(CALICO), SOCKET));

    // Uninstall also cleans a file an older agent chained into after this one started.
    Files.write(calico, JSON.writeValueAsBytes(CniInstallation.chained(json(CALICO), SOCKET)));
    installation.uninstall();
    assertThat(json(Files.readString(calico))).isEqualTo(json(CALICO));
    assertThat(conf.resolve(CniInstallation.CONFLIST)).doesNotExist();
  }

  @Test
  void writesNothingWhenAnotherFileSortsBeforeItsOwn(@TempDir Path dir) throws Exception {
    Path plugin = Files.writeString(dir.resolve("natgate-cni"), "binary");
    Path conf = Files.createDirectories(dir.resolve("net.d"));
    Files.writeString(conf.resolve("10-calico.conflist"), CALICO);
    var installation = new CniInstallation(plugin, Files.createDirectories(dir.resolve("bin")), conf, SOCKET);
    installation.ensure();
    assertThat(conf.resolve(CniInstallation.CONFLIST)).exists();

    Path multus = Files.writeString(conf.resolve("00-multus.conf"), "{\"cniVersion\":\"0.3.1\",\"name\":\"multus\",\"type\":\"multus\"}");
    installation.ensure();
    assertThat(conf.resolve(CniInstallation.CONFLIST)).as("not the runtime's, and not a delegate for Multus").doesNotExist();
    assertThat(multus).hasContent("{\"cniVersion\":\"0.3.1\",\"name\":\"multus\",\"type\":\"multus\"}");
  }

  /** As libcni: the extension decides, so a dot-file is a configuration and a temporary name is not. */
  @Test
  void takesTheNetworkPluginsFileAsLibcniListsIt(@TempDir Path dir) throws Exception {
    Path conf = Files.createDirectories(dir.resolve("net.d"));
    Files.writeString(conf.resolve("10-calico.conflist"), CALICO);
    Files.writeString(conf.resolve("05-calico.conflist.tmp"), CALICO);
    assertThat(CniInstallation.primary(conf)).contains(conf.resolve("10-calico.conflist"));
    Files.writeString(conf.resolve(".10-calico.conflist"), CALICO);
    assertThat(CniInstallation.primary(conf)).contains(conf.resolve(".10-calico.conflist"));
  }

  @Test
  void waitsForTheNetworkPluginsConfiguration(@TempDir Path dir) throws Exception {
    Path plugin = Files.writeString(dir.resolve("natgate-cni"), "binary");
    Path conf = dir.resolve("net.d");
    new CniInstallation(plugin, Files.createDirectories(dir.resolve("bin")), conf, SOCKET).ensure();
    assertThat(conf).doesNotExist();
  }
}
