package io.natgate.api.v1alpha1;

import io.fabric8.crd.generator.annotation.AdditionalPrinterColumn;
import io.fabric8.kubernetes.client.CustomResource;
import io.fabric8.kubernetes.model.annotation.Group;
import io.fabric8.kubernetes.model.annotation.Version;

/**
 * Internal: the complete desired data-plane state of one node, named after it. The operator writes the spec (one
 * map entry per EgressGateway, each under that gateway's own server-side-apply field manager); the node's agent
 * applies it and reports back in status.
 */
@Group(EgressGateway.GROUP)
@Version(EgressGateway.VERSION)
@AdditionalPrinterColumn(name = "APPLIED", jsonPath = ".status.appliedGeneration",
    type = AdditionalPrinterColumn.Type.INTEGER)
@AdditionalPrinterColumn(name = "ERROR", jsonPath = ".status.error", type = AdditionalPrinterColumn.Type.STRING)
public class EgressNodeState extends CustomResource<EgressNodeStateSpec, EgressNodeStateStatus> {
}
