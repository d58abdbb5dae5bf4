package io.natgate.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.fabric8.kubernetes.api.model.GenericKubernetesResource;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.fabric8.kubernetes.client.utils.Serialization;
import io.natgate.testing.ControlPlane;
import io.natgate.testing.ControlPlaneExtension;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The committed CRD refuses bad specs at admission (server-side dry run), naming the field and the problem. */
@ExtendWith(ControlPlaneExtension.class)
class CrdValidationIT {
  private static final String VALID_SPEC = """
      nodeSelector: {matchLabels: {role: egress}}
      egressIPs: [198.18.0.100]
      sources: {namespaceSelector: {matchLabels: {team: pay}}}
      """;

  private final ControlPlane controlPlane;

  CrdValidationIT(ControlPlane controlPlane) {
    this.controlPlane = controlPlane;
  }

  static Stream<Arguments> invalid() {
    String sel = "nodeSelector: {matchLabels: {role: egress}}\nsources: {podSelector: {}}\n";
    String node = "nodeSelector: {matchLabels: {role: egress}}\n";
    return Stream.of(
        Arguments.of("no spec", null, "spec is required"),
        Arguments.of("no nodeSelector", "sources: {podSelector: {}}", "spec.nodeSelector: Required value"),
        Arguments.of("empty nodeSelector", "nodeSelector: {}\nsources: {podSelector: {}}",
            "nodeSelector must set matchLabels or matchExpressions"),
        Arguments.of("no sources", "nodeSelector: {matchLabels: {a: b}}", "spec.sources: Required value"),
        Arguments.of("empty sources", "nodeSelector: {matchLabels: {a: b}}\nsources: {}",
            "sources must set namespaceSelector, podSelector, or both"),
        Arguments.of("IP not an IP", sel + "egressIPs: [not-an-ip]", "spec.egressIPs"),
        Arguments.of("IP with octet > 255", sel + "egressIPs: [198.18.0.256]", "egressIPs must be IPv4 addresses"),
        Arguments.of("IPv6 IP", sel + "egressIPs: ['2001:db8::1']", "egressIPs must be IPv4 addresses"),
        Arguments.of("IP with prefix", sel + "egressIPs: [198.18.0.1/32]", "egressIPs must be IPv4 addresses"),
        Arguments.of("IP too long", sel + "egressIPs: [198.018.000.0100]", "spec.egressIPs[0]"),
        Arguments.of("unspecified IP", sel + "egressIPs: [0.0.0.0]", "egressIPs must be usable unicast addresses"),
        Arguments.of("this-network IP", sel + "egressIPs: [0.1.2.3]", "egressIPs must be usable unicast addresses"),
        Arguments.of("loopback IP", sel + "egressIPs: [127.0.0.1]", "egressIPs must be usable unicast addresses"),
        Arguments.of("broadcast IP", sel + "egressIPs: [255.255.255.255]", "egressIPs must be usable unicast addresses"),
        Arguments.of("multicast IP", sel + "egressIPs: [224.0.0.5]", "egressIPs must be usable unicast addresses"),
        Arguments.of("link-local IP", sel + "egressIPs: [169.254.1.1]", "egressIPs must be usable unicast addresses"),
        Arguments.of("reserved IP", sel + "egressIPs: [240.0.0.1]", "egressIPs must be usable unicast addresses"),
        Arguments.of("duplicate IP", sel + "egressIPs: [198.18.0.1, 198.18.0.1]", "egressIPs must not repeat"),
        Arguments.of("too many IPs", sel + "egressIPs: [" + ips(17) + "]", "spec.egressIPs: Too many"),
        Arguments.of("unknown failurePolicy", sel + "failurePolicy: Maybe", "spec.failurePolicy: Unsupported value"),
        Arguments.of("CIDR not a CIDR", sel + "destinations: {cidrs: [203.0.113.0]}", "cidrs must be IPv4 CIDRs"),
        Arguments.of("CIDR bad prefix", sel + "destinations: {cidrs: [203.0.113.0/33]}", "cidrs must be IPv4 CIDRs"),
        Arguments.of("IPv6 CIDR", sel + "destinations: {cidrs: ['2001:db8::/32']}", "cidrs must be IPv4 CIDRs"),
        Arguments.of("CIDR with host bits", sel + "destinations: {cidrs: [203.0.113.7/24]}", "no host bits"),
        Arguments.of("empty cidrs", sel + "destinations: {cidrs: []}", "spec.destinations.cidrs"),
        Arguments.of("duplicate CIDR", sel + "destinations: {cidrs: [203.0.113.0/24, 203.0.113.0/24]}",
            "cidrs must not repeat"),
        Arguments.of("bad excluded CIDR", sel + "destinations: {excludedCidrs: [192.0.2.0/40]}",
            "excludedCidrs must be IPv4 CIDRs"),
        Arguments.of("excluded CIDR with host bits", sel + "destinations: {excludedCidrs: [192.0.2.1/24]}",
            "excludedCidrs must have no host bits"),
        Arguments.of("duplicate excluded CIDR", sel + "destinations: {excludedCidrs: [192.0.2.0/24, 192.0.2.0/24]}",
            "excludedCidrs must not repeat"),
        Arguments.of("too many CIDRs", sel + "destinations: {cidrs: [" + cidrs(65) + "]}",
            "spec.destinations.cidrs: Too many"),
        Arguments.of("egressIPs not a list", sel + "egressIPs: 198.18.0.1", "spec.egressIPs"),
        // Label selectors: what Kubernetes refuses in its own workloads' selectors.
        Arguments.of("unknown operator", node + "sources: {podSelector: {matchExpressions: [{key: a, operator: Equals, "
            + "values: [x]}]}}", "spec.sources.podSelector.matchExpressions[0].operator: Unsupported value: \"Equals\""),
        Arguments.of("In without values", node + "sources: {podSelector: {matchExpressions: [{key: a, operator: In}]}}",
            "values must be non-empty for In and NotIn"),
        Arguments.of("NotIn with no values", node + "sources: {namespaceSelector: {matchExpressions: [{key: a, "
            + "operator: NotIn, values: []}]}}", "values must be non-empty for In and NotIn"),
        Arguments.of("Exists with values", "nodeSelector: {matchExpressions: [{key: a, operator: Exists, values: [x]}]}\n"
            + "sources: {podSelector: {}}", "empty for Exists and DoesNotExist"),
        Arguments.of("expression without operator", node + "sources: {podSelector: {matchExpressions: [{key: a}]}}",
            "spec.sources.podSelector.matchExpressions[0].operator: Required value"),
        Arguments.of("expression key with a space", node + "sources: {podSelector: {matchExpressions: [{key: 'a b', "
            + "operator: Exists}]}}", "spec.sources.podSelector.matchExpressions[0].key"),
        Arguments.of("expression value too long", node + "sources: {podSelector: {matchExpressions: [{key: a, "
            + "operator: In, values: [" + "v".repeat(64) + "]}]}}", "Too long"),
        Arguments.of("matchLabels key with a space", "nodeSelector: {matchLabels: {'node role': egress}}\n"
            + "sources: {podSelector: {}}", "matchLabels keys must be label keys"),
        Arguments.of("matchLabels key with two slashes", node + "sources: {namespaceSelector: {matchLabels: "
            + "{'a/b/c': x}}}", "matchLabels keys must be label keys"),
        Arguments.of("matchLabels value starting with a dash", node + "sources: {namespaceSelector: {matchLabels: "
            + "{team: '-pay'}}}", "spec.sources.namespaceSelector.matchLabels.team"));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("invalid")
  void refusesWithTheFieldNamed(String why, String spec, String expected) {
    assertThatThrownBy(() -> dryRunCreate(spec))
        .isInstanceOf(KubernetesClientException.class)
        .satisfies(e -> assertThat(((KubernetesClientException) e).getCode()).isEqualTo(422))
        .hasMessageContaining(expected);
  }

  @Test
  void acceptsAValidSpecAndDefaultsFailurePolicyToDrop() {
    GenericKubernetesResource created = dryRunCreate(VALID_SPEC);
    assertThat(created.getAdditionalProperties().get("spec").toString()).contains("failurePolicy=Drop");
  }

  @Test
  void acceptsEverySelectorFormKubernetesAccepts() {
    dryRunCreate("""
        nodeSelector: {matchExpressions: [{key: node-role.kubernetes.io/egress, operator: Exists}]}
        sources:
          namespaceSelector:
            matchLabels: {example.com/team: pay_ments.1, empty: ''}
            matchExpressions: [{key: tier, operator: NotIn, values: [a, b]}, {key: x, operator: DoesNotExist}]
          podSelector: {matchExpressions: [{key: app, operator: In, values: [web]}]}
        """);
  }

  @Test
  void acceptsEmptyEgressIPsAndTheSample() {
    dryRunCreate("nodeSelector: {matchLabels: {a: b}}\negressIPs: []\nsources: {podSelector: {}}");
    controlPlane.admin().load(streamOf(ControlPlane.repo().resolve("config/samples/egressgateway.yaml")))
        .dryRun().create();
  }

  private GenericKubernetesResource dryRunCreate(String specYaml) {
    String yaml = "apiVersion: natgate.io/v1alpha1\nkind: EgressGateway\nmetadata: {name: check}\n"
        + (specYaml == null ? "" : "spec:\n" + specYaml.indent(2));
    var resource = Serialization.unmarshal(yaml, GenericKubernetesResource.class);
    return controlPlane.admin().resource(resource).dryRun().create();
  }

  private static java.io.InputStream streamOf(java.nio.file.Path p) {
    try {
      return java.nio.file.Files.newInputStream(p);
    } catch (java.io.IOException e) {
      throw new IllegalStateException(e);
    }
  }

  private static String ips(int n) {
    return String.join(", ", Stream.iterate(1, i -> i + 1).limit(n).map(i -> "198.18.0." + i).toList());
  }

  private static String cidrs(int n) {
    return String.join(", ", Stream.iterate(1, i -> i + 1).limit(n).map(i -> "203.0." + i + ".0/24").toList());
  }
}
