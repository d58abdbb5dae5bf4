package io.natgate.api.v1alpha1;

import io.fabric8.crd.generator.annotation.AdditionalPrinterColumn;
import io.fabric8.kubernetes.client.CustomResource;
import io.fabric8.kubernetes.model.annotation.Group;
import io.fabric8.kubernetes.model.annotation.Version;
import io.natgate.Sha256;

/**
 * Internal: one node's part in one EgressGateway (gateway role, director role, or both). The operator writes the
 * spec; the node's agent applies all states with its nodeName together and reports on each in its status. One
 * object per (gateway, node) keeps every write small and owned by one writer: gateways never contend for an object.
 */
@Group(EgressGateway.GROUP)
@Version(EgressGateway.VERSION)
@AdditionalPrinterColumn(name = "NODE", jsonPath = ".spec.nodeName", type = AdditionalPrinterColumn.Type.STRING)
@AdditionalPrinterColumn(name = "GATEWAY", jsonPath = ".spec.gateway", type = AdditionalPrinterColumn.Type.STRING)
@AdditionalPrinterColumn(name = "APPLIED", jsonPath = ".status.appliedGeneration",
    type = AdditionalPrinterColumn.Type.INTEGER)
@AdditionalPrinterColumn(name = "ERROR", jsonPath = ".status.error", type = AdditionalPrinterColumn.Type.STRING)
public class EgressNodeState extends CustomResource<EgressNodeStateSpec, EgressNodeStateStatus> {
  /**
   * The object's name: {@code <gateway>.<node>} cut to fit, and a hash of both, since names of either may contain
   * dots (so that two pairs never share a name) and may be up to 253 characters long each.
   */
  public static String nameFor(String gateway, String node) {
    return cut(gateway) + "." + cut(node) + "-" + Sha256.hex(gateway + "/" + node, 5);
  }

  /** At most 115 characters that do not end in '.' or '-' (two of them, a dot, a dash and 10 hex digits fit 253). */
  private static String cut(String name) {
    String s = name.length() <= 115 ? name : name.substring(0, 115);
    return s.replaceAll("[.-]+$", "");
  }
}
