package io.natgate.agent;

import static org.assertj.core.api.Assertions.assertThat;

import io.natgate.api.v1alpha1.AllowEntry;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.EgressNodeStateSpec;
import io.natgate.api.v1alpha1.NodeGatewayState;
import io.natgate.api.v1alpha1.ResolvedName;
import io.natgate.dataplane.DestinationSets;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

class NameCountsTest {
  static final Instant T0 = Instant.parse("2026-11-30T01:00:00.123Z");
  static final String API = DestinationSets.fqdn("pay", "api.payments.example");

  @Test
  void readsTheCountsOfNatgatesNamesSetsOnlyFromIpsetsHeaders() {
    String terse = """
        Name: KUBE-X
        Type: hash:ip
        Number of entries: 12
        Name: %s
        Type: hash:net,net
        Header: family inet hashsize 1024 maxelem 1048576 timeout 0 bucketsize 12 initval 0x1
        References: 1
        Number of entries: 3
        Name: natgate-s-1
        Number of entries: 40
        """.formatted(API);
    assertThat(DestinationSets.entries(terse)).containsExactly(Map.entry(API, 3));
  }

  @Test
  void aStatusChangesOnlyWhenANumberDoes() {
    var counts = new NameCounts();
    assertThat(counts.update(Map.of(API, 3), T0)).isTrue();
    assertThat(counts.update(Map.of(API, 3), T0.plusSeconds(5))).as("same number: nothing to write").isFalse();
    var state = new NodeGatewayState();
    state.allow = List.of(AllowEntry.fqdn("api.payments.example"), AllowEntry.fqdn("other.example"),
        AllowEntry.cidr("192.0.2.0/24"));
    assertThat(counts.of("pay", state)).as("named by the fqdn, learned when first counted, in whole seconds")
        .containsExactly(new ResolvedName("api.payments.example", 3, "2026-11-30T01:00:00Z"));
    assertThat(counts.update(Map.of(API, 5), T0.plusSeconds(10))).isTrue();
    assertThat(counts.of("pay", state)).containsExactly(new ResolvedName("api.payments.example", 5,
        "2026-11-30T01:00:10Z"));
    assertThat(counts.update(Map.of(), T0.plusSeconds(15))).as("the set went").isTrue();
    assertThat(counts.of("pay", state)).isNull();
    assertThat(counts.of("other-gateway", state)).isNull();
  }

  @Test
  void theStatusOfAStateCarriesItsNames() {
    var counts = new NameCounts();
    counts.update(Map.of(API, 2), T0);
    var part = new NodeGatewayState();
    part.allow = List.of(AllowEntry.fqdn("api.payments.example"));
    var state = new EgressNodeState();
    state.setMetadata(new io.fabric8.kubernetes.api.model.ObjectMetaBuilder().withName("s").withGeneration(4L).build());
    state.setSpec(new EgressNodeStateSpec("node-1", "pay", part));
    var status = Outcome.applied(List.of(state), Set.of()).statusFor(state, counts);
    assertThat(status.appliedGeneration).isEqualTo(4L);
    assertThat(status.resolvedNames).containsExactly(new ResolvedName("api.payments.example", 2,
        "2026-11-30T01:00:00Z"));
  }
}
