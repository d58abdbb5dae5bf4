package io.natgate.api.v1alpha1;

import io.fabric8.crd.generator.annotation.AdditionalPrinterColumn;
import io.fabric8.generator.annotation.ValidationRule;
import io.fabric8.kubernetes.client.CustomResource;
import io.fabric8.kubernetes.model.annotation.Group;
import io.fabric8.kubernetes.model.annotation.ShortNames;
import io.fabric8.kubernetes.model.annotation.Version;

/**
 * A set of stable egress source IPs for the pods a selector picks, held by dedicated gateway nodes.
 * Cluster-scoped: one gateway serves pods from any namespace.
 */
@Group(EgressGateway.GROUP)
@Version(EgressGateway.VERSION)
@ShortNames("egw")
@ValidationRule(value = "has(self.spec)", message = "spec is required")
@AdditionalPrinterColumn(name = "SOURCE-IPS", jsonPath = ".status.sourceIPs",
    type = AdditionalPrinterColumn.Type.STRING)
@AdditionalPrinterColumn(name = "GATEWAY-NODES", jsonPath = ".status.assignments[*].node",
    type = AdditionalPrinterColumn.Type.STRING)
@AdditionalPrinterColumn(name = "READY", jsonPath = ".status.conditions[?(@.type==\"Ready\")].status",
    type = AdditionalPrinterColumn.Type.STRING)
@AdditionalPrinterColumn(name = "AGE", jsonPath = ".metadata.creationTimestamp",
    type = AdditionalPrinterColumn.Type.DATE)
public class EgressGateway extends CustomResource<EgressGatewaySpec, EgressGatewayStatus> {
  public static final String GROUP = "natgate.io";
  public static final String VERSION = "v1alpha1";

  @Override
  protected EgressGatewayStatus initStatus() {
    return new EgressGatewayStatus();
  }
}
