package io.natgate.kind;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.dajudge.kindcontainer.KindContainer;
import com.dajudge.kindcontainer.KindContainerVersion;
import io.fabric8.kubernetes.client.Config;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientBuilder;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.testing.ControlPlane;
import io.natgate.testing.Images;
import io.natgate.testing.Kubectl;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.utility.MountableFile;

/**
 * The users' path, for people with Docker: a Kind cluster (Testcontainers), natgate installed from config/default
 * with the images of {@code make docker-build} loaded into the node, then scenario 1 (the sample gateway becomes
 * Ready and Programmed and the node's kernel has its SNAT rule) and scenario 6 (deleting it leaves no natgate
 * chain, set or node state). Runs with {@code -Pkind}; never here (no Docker engine).
 */
@EnabledIfSystemProperty(named = "natgate.kind", matches = "true",
    disabledReason = "Kind tests need Docker: mvn verify -Pkind -Dit.test=KindE2E after make docker-build")
class KindE2E {
  static final Duration SLOW = Duration.ofMinutes(5);

  @Test
  void theSampleGatewayIsProgrammedOnKindAndLeavesNothingBehind() throws Exception {
    Assumptions.assumeTrue(DockerClientFactory.instance().isDockerAvailable(), "no Docker engine reachable");
    try (KindContainer<?> kind = new KindContainer<>(KindContainerVersion.VERSION_1_34_0)) {
      kind.start();
      for (String image : List.of(Images.of("config/manager/manager.yaml"), Images.of("config/agent/daemonset.yaml"))) {
        load(kind, image);
      }
      try (Kubectl kubectl = new Kubectl(kind.getKubeconfig());
          KubernetesClient client = new KubernetesClientBuilder()
              .withConfig(Config.fromKubeconfig(kind.getKubeconfig())).build()) {
        assertThat(kubectl.run("apply", "--server-side", "-f", "config/default/namespace.yaml").exitCode()).isZero();
        var install = kubectl.run("apply", "--server-side", "-k", "config/default");
        assertThat(install.exitCode()).as(install.summary()).isZero();
        String node = client.nodes().list().getItems().get(0).getMetadata().getName();
        client.nodes().withName(node).edit(n -> {
          n.getMetadata().getLabels().put("node-role.kubernetes.io/egress", "");
          return n;
        });
        try (InputStream sample = Files.newInputStream(ControlPlane.repo().resolve("config/samples/egressgateway.yaml"))) {
          client.load(sample).serverSideApply();
        }

        await().atMost(SLOW).untilAsserted(() -> {
          var status = client.resources(EgressGateway.class).withName("payments").get().getStatus();
          assertThat(status).isNotNull();
          assertThat(status.conditions).anySatisfy(c -> assertThat(c.getType() + c.getStatus()).isEqualTo("ReadyTrue"));
          assertThat(status.conditions).anySatisfy(c ->
              assertThat(c.getType() + c.getStatus()).isEqualTo("ProgrammedTrue"));
        });
        assertThat(kind.execInContainer("iptables-save").getStdout()).contains("NATGATE-POSTROUTING");

        client.resources(EgressGateway.class).withName("payments").delete();
        await().atMost(SLOW).until(() -> client.resources(EgressNodeState.class).list().getItems().isEmpty());
        await().atMost(SLOW).untilAsserted(() -> {
          assertThat(kind.execInContainer("iptables-save").getStdout()).doesNotContain("NATGATE");
          assertThat(kind.execInContainer("ipset", "list", "-n").getStdout()).doesNotContain("natgate");
        });
      }
    }
  }

  /** Copies an image from the local Docker engine into the Kind node's containerd. */
  static void load(KindContainer<?> kind, String image) throws Exception {
    Path tar = Files.createTempFile("natgate-image", ".tar");
    try (InputStream saved = DockerClientFactory.instance().client().saveImageCmd(image).exec()) {
      Files.copy(saved, tar, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
      kind.copyFileToContainer(MountableFile.forHostPath(tar), "/tmp/image.tar");
      var imported = kind.execInContainer("ctr", "-n", "k8s.io", "images", "import", "/tmp/image.tar");
      assertThat(imported.getExitCode()).as(imported.getStderr()).isZero();
    } finally {
      Files.deleteIfExists(tar);
    }
  }
}
