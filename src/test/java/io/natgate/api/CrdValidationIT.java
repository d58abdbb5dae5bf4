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
        // The allow list (destination control): one case per rule, each naming the field.
        Arguments.of("allow entry with cidr and fqdn", allow("{cidr: 198.51.100.0/24, fqdn: a.example}"),
            "spec.destinations.allow[0]: Invalid value: \"object\": an allow entry must set exactly one of cidr and fqdn"),
        Arguments.of("allow entry with neither", allow("{ports: [{protocol: TCP, port: 443}]}"),
            "spec.destinations.allow[0]: Invalid value: \"object\": an allow entry must set exactly one"),
        Arguments.of("allow cidr not a CIDR", allow("{cidr: 198.51.100.1}"),
            "spec.destinations.allow[0].cidr: Invalid value: \"string\": cidr must be an IPv4 CIDR"),
        Arguments.of("allow IPv6 cidr", allow("{cidr: '2001:db8::/32'}"),
            "spec.destinations.allow[0].cidr: Invalid value: \"string\": cidr must be an IPv4 CIDR"),
        Arguments.of("allow cidr with host bits", allow("{cidr: 198.51.100.7/24}"),
            "spec.destinations.allow[0].cidr: Invalid value: \"string\": cidr must have no host bits"),
        Arguments.of("allow fqdn in capitals", allow("{fqdn: Api.Payments.example}"),
            "spec.destinations.allow[0].fqdn: Invalid value: \"string\": fqdn must be a lowercase DNS name"),
        Arguments.of("allow fqdn with a trailing dot", allow("{fqdn: api.payments.example.}"),
            "spec.destinations.allow[0].fqdn: Invalid value: \"string\": fqdn must be a lowercase DNS name"),
        Arguments.of("allow fqdn with an underscore", allow("{fqdn: api_1.example}"),
            "spec.destinations.allow[0].fqdn: Invalid value: \"string\": fqdn must be a lowercase DNS name"),
        Arguments.of("allow fqdn label ending in a dash", allow("{fqdn: api-.example}"),
            "spec.destinations.allow[0].fqdn: Invalid value: \"string\": fqdn must be a lowercase DNS name"),
        Arguments.of("allow fqdn label of 64", allow("{fqdn: " + "a".repeat(64) + ".example}"),
            "spec.destinations.allow[0].fqdn: Invalid value: \"string\": fqdn must be a lowercase DNS name"),
        Arguments.of("allow fqdn of 254", allow("{fqdn: " + longName(254) + "}"),
            "spec.destinations.allow[0].fqdn: Too long"),
        Arguments.of("allow fqdn with a wildcard inside", allow("{fqdn: 'api.*.example'}"),
            "spec.destinations.allow[0].fqdn: Invalid value: \"string\": fqdn must be a lowercase DNS name"),
        Arguments.of("allow fqdn with a partial wildcard", allow("{fqdn: '*api.example'}"),
            "spec.destinations.allow[0].fqdn: Invalid value: \"string\": fqdn must be a lowercase DNS name"),
        Arguments.of("allow fqdn that is an IP", allow("{fqdn: 198.51.100.7}"),
            "spec.destinations.allow[0].fqdn: Invalid value: \"string\": fqdn must be a DNS name, not an IP address"),
        Arguments.of("allow port with an unknown protocol", allow("{cidr: 198.51.100.0/24, ports: [{protocol: ICMP, port: 1}]}"),
            "spec.destinations.allow[0].ports[0].protocol: Unsupported value: \"ICMP\""),
        Arguments.of("allow port without protocol", allow("{cidr: 198.51.100.0/24, ports: [{port: 443}]}"),
            "spec.destinations.allow[0].ports[0].protocol: Required value"),
        Arguments.of("allow port without port", allow("{cidr: 198.51.100.0/24, ports: [{protocol: TCP}]}"),
            "spec.destinations.allow[0].ports[0].port: Required value"),
        Arguments.of("allow port 0", allow("{cidr: 198.51.100.0/24, ports: [{protocol: TCP, port: 0}]}"),
            "spec.destinations.allow[0].ports[0].port: Invalid value: 0: spec.destinations.allow[0].ports[0].port in "
                + "body should be greater than or equal to 1"),
        Arguments.of("allow port 65536", allow("{cidr: 198.51.100.0/24, ports: [{protocol: UDP, port: 65536}]}"),
            "spec.destinations.allow[0].ports[0].port: Invalid value: 65536"),
        Arguments.of("allow endPort 65536", allow("{cidr: 198.51.100.0/24, ports: [{protocol: TCP, port: 1, "
            + "endPort: 65536}]}"), "spec.destinations.allow[0].ports[0].endPort: Invalid value: 65536"),
        Arguments.of("allow endPort below port", allow("{cidr: 198.51.100.0/24, ports: [{protocol: TCP, port: 8080, "
            + "endPort: 8000}]}"),
            "spec.destinations.allow[0].ports[0]: Invalid value: \"object\": endPort must be >= port"),
        Arguments.of("allow with no ports", allow("{cidr: 198.51.100.0/24, ports: []}"),
            "spec.destinations.allow[0].ports: Invalid value: 0: spec.destinations.allow[0].ports in body should have "
                + "at least 1 items"),
        Arguments.of("allow with 17 ports", allow("{cidr: 198.51.100.0/24, ports: [" + ports(17) + "]}"),
            "spec.destinations.allow[0].ports: Too many: 17: must have at most 16 items"),
        Arguments.of("empty allow", sel + "destinations: {allow: []}",
            "spec.destinations.allow: Invalid value: 0: spec.destinations.allow in body should have at least 1 items"),
        Arguments.of("allow with 129 entries", sel + "destinations: {allow: [" + allowEntries(129) + "]}",
            "spec.destinations.allow: Too many: 129: must have at most 128 items"),
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
  void acceptsTheIssuesAllowListAndTheLargestOne() {
    dryRunCreate("""
        nodeSelector: {matchLabels: {role: egress}}
        sources: {podSelector: {}}
        destinations:
          allow:
          - cidr: 198.51.100.0/24
            ports: [{protocol: TCP, port: 443}, {protocol: TCP, port: 8000, endPort: 8080}]
          - fqdn: api.payments.example
          - fqdn: "*.payments.example"
            ports: [{protocol: UDP, port: 53}, {protocol: SCTP, port: 1, endPort: 65535}]
          - fqdn: localhost
          - cidr: 0.0.0.0/0
        """);
    // 128 entries of names of 253 characters with 16 ports each: within the schema and the CEL cost budget.
    String entry = "{fqdn: " + longName(253) + ", ports: [" + ports(16) + "]}";
    dryRunCreate(allow(String.join(", ", java.util.Collections.nCopies(128, entry))));
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

  private static String allow(String entry) {
    return "nodeSelector: {matchLabels: {role: egress}}\nsources: {podSelector: {}}\ndestinations: {allow: [" + entry
        + "]}";
  }

  /** A valid name of exactly n characters: labels of 63 and a shorter last one. */
  private static String longName(int n) {
    var name = new StringBuilder();
    while (n - name.length() > 64) {
      name.append("a".repeat(63)).append('.');
    }
    return name.append("b".repeat(n - name.length())).toString();
  }

  private static String ports(int n) {
    return String.join(", ", Stream.iterate(1, i -> i + 1).limit(n).map(i -> "{protocol: TCP, port: " + i + "}")
        .toList());
  }

  private static String allowEntries(int n) {
    return String.join(", ", Stream.iterate(0, i -> i + 1).limit(n)
        .map(i -> i % 2 == 0 ? "{cidr: 198.51." + i / 2 + ".0/24}" : "{fqdn: '*.n" + i + ".example'}").toList());
  }

  private static String ips(int n) {
    return String.join(", ", Stream.iterate(1, i -> i + 1).limit(n).map(i -> "198.18.0." + i).toList());
  }

  private static String cidrs(int n) {
    return String.join(", ", Stream.iterate(1, i -> i + 1).limit(n).map(i -> "203.0." + i + ".0/24").toList());
  }
}
