package io.natgate.dns;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.fabric8.kubernetes.api.model.ObjectMetaBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.natgate.agent.Agent;
import io.natgate.agent.Heartbeat;
import io.natgate.api.v1alpha1.AllowEntry;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import io.natgate.api.v1alpha1.FailurePolicy;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.api.v1alpha1.PortRange;
import io.natgate.api.v1alpha1.Protocol;
import io.natgate.dataplane.DestinationSets;
import io.natgate.dataplane.Kernel;
import io.natgate.lab.LabNode;
import io.natgate.lab.NetworkLab;
import io.natgate.peers.PeerKey;
import io.natgate.testing.ControlPlane;
import io.natgate.testing.ControlPlaneExtension;
import io.natgate.testing.LabAgent;
import io.natgate.testing.TcpProxy;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The agent's wiring of the DNS path, from its node states on the real API server: the director's agent installs the
 * redirect of its followed pod and, once it has the peer key, answers the pod's queries after the holder's agent
 * confirmed the pairs; without the names, the redirect goes.
 */
@ExtendWith(ControlPlaneExtension.class)
class DnsAgentLabIT {
  static final String EGRESS_IP = "198.18.0.140";
  static final String RESOLVER = "192.0.2.53";
  static final String NAME = "api.payments.example";

  @RegisterExtension
  static final NetworkLab lab = NetworkLab.withNodes(2).podsPerNode(1);

  private final ControlPlane controlPlane;

  DnsAgentLabIT(ControlPlane controlPlane) {
    this.controlPlane = controlPlane;
  }

  static EgressNodeState state(LabNode node, NodeGatewayState part) {
    var state = new EgressNodeState();
    state.setMetadata(new ObjectMetaBuilder().withName(EgressNodeState.nameFor("payments", node.name())).build());
    state.setSpec(new EgressNodeStateSpec(node.name(), "payments", part));
    return state;
  }

  static NodeGatewayState part(boolean names) {
    var s = new NodeGatewayState();
    s.failurePolicy = FailurePolicy.Drop;
    s.cidrs = List.of("0.0.0.0/0");
    s.excludedCidrs = List.of(NetworkLab.POD_CIDR);
    // The resolver is allowed as an address: a query the proxy does not take goes through the gateway, checked.
    var resolver = AllowEntry.cidr(RESOLVER + "/32", new PortRange(Protocol.UDP, 53, null));
    s.allow = names ? List.of(new AllowEntry(null, NAME, List.of(new PortRange(Protocol.TCP, 443, null))), resolver)
        : List.of(AllowEntry.cidr("198.51.100.0/24"), resolver);
    return s;
  }

  @Test
  void theAgentRedirectsItsFollowedPodAndReleasesAnswersTheHolderConfirmed() throws Exception {
    LabNode director = lab.node(1);
    LabNode holder = lab.node(2);
    String pod = lab.pod(1, 1).ip();
    KubernetesClient admin = controlPlane.admin();
    PeerKey.ensure(admin, ControlPlane.OPERATOR_NAMESPACE); // the operator's part
    // Node states another test class left for nodes of the same names would steer this lab's pods too.
    admin.resources(EgressNodeState.class).delete();
    await().atMost(Duration.ofSeconds(10)).until(() -> admin.resources(EgressNodeState.class).list().getItems().isEmpty());
    URI api = URI.create(admin.getConfiguration().getMasterUrl());
    lab.exec(lab.externalNs(), "ip", "addr", "add", RESOLVER + "/32", "dev", "lo");
    String client;
    try (InputStream in = DnsAgentLabIT.class.getResourceAsStream("/lab/dns_client.py")) {
      client = new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
    var upstream = new InetSocketAddress(RESOLVER, 53);
    try (LabDnsServer dns = new LabDnsServer(new Kernel(lab.nsCommandPrefix(lab.externalNs())),
        Map.of(NAME, new LabDnsServer.Zone(null, List.of("203.0.113.50", "203.0.113.51", "203.0.113.52"))))
        .start(RESOLVER, 8443);
        TcpProxy link1 = new TcpProxy(api.getHost(), api.getPort());
        TcpProxy link2 = new TcpProxy(api.getHost(), api.getPort());
        Agent a1 = LabAgent.startWithDns(controlPlane, lab, director, link1, upstream);
        Agent a2 = LabAgent.startWithDns(controlPlane, lab, holder, link2, upstream)) {
      var steering = part(true);
      steering.steer.add(new NodeGatewayState.Steer(EGRESS_IP, holder.name(), holder.ip(), List.of(pod)));
      var holding = part(true);
      holding.snat.add(new NodeGatewayState.Snat(EGRESS_IP, true, List.of(pod)));
      EgressNodeState onDirector = admin.resource(state(director, steering)).create();
      admin.resource(state(holder, holding)).create();
      await().atMost(Duration.ofSeconds(20)).until(() -> a1.ready() && a2.ready() && lab.holds(holder, EGRESS_IP));
      assertThat(lab.exec(director.ns(), "iptables-save", "-t", "nat"))
          .contains("-A NATGATE-PREROUTING ! -i natgate0 -p udp -m set --match-set natgate-dns src -m udp --dport 53 "
              + "-j DNAT --to-destination " + director.ip() + ":4792");
      // The name's set, as the gateway role will make it (created here until it does).
      String set = DestinationSets.fqdn("payments", NAME);
      if (!lab.exec(holder.ns(), "ipset", "list", "-n").contains(set)) {
        lab.exec(holder.ns(), "ipset", "create", set, "hash:ip,port,ip", "timeout", "1");
      }

      // The agent starts its proxy once it has read the key: queries answered from then on.
      await().atMost(Duration.ofSeconds(20)).until(() -> query(client, pod).path("rcodes").path("0").asInt() == 1);
      JsonNode r = query(client, pod);
      assertThat(r.path("rcodes").path("0").asInt()).isEqualTo(1);
      String members = lab.exec(holder.ns(), "ipset", "list", set);
      // "pod,address" or "pod,tcp:443,address", as the set's type has it
      r.path("addresses").forEach(a -> assertThat(members).containsPattern(
          Pattern.quote(pod) + ",(tcp:443,)?" + Pattern.quote(a.asText()) + " "));

      // Without names in the allow list, the pod's queries are left alone again.
      admin.resources(EgressNodeState.class).withName(onDirector.getMetadata().getName()).edit(st -> {
        st.getSpec().allow = part(false).allow;
        return st;
      });
      await().atMost(Duration.ofSeconds(20)).until(() -> !lab.exec(director.ns(), "iptables-save", "-t", "nat")
          .contains("NATGATE-PREROUTING"));
      long before = dns.queries();
      assertThat(query(client, pod).path("rcodes").path("0").asInt()).isEqualTo(1);
      assertThat(dns.queries()).isEqualTo(before + 1);
    } finally {
      admin.resources(EgressNodeState.class).delete();
      for (LabNode n : lab.nodes()) {
        admin.leases().inNamespace(ControlPlane.OPERATOR_NAMESPACE).withName(Heartbeat.leaseName(n.name())).delete();
      }
      lab.exec(lab.externalNs(), "ip", "addr", "del", RESOLVER + "/32", "dev", "lo");
    }
  }

  private static JsonNode query(String client, String pod) throws Exception {
    String ns = lab.pods().stream().filter(p -> p.ip().equals(pod)).findFirst().orElseThrow().ns();
    return new ObjectMapper().readTree(lab.exec(ns, lab.python(), "-c", client, "--server", RESOLVER, "--name", NAME,
        "--count", "1", "--timeout", "1"));
  }
}
