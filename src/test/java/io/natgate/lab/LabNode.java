package io.natgate.lab;

/**
 * A node of the {@link NetworkLab}: a namespace on the node network with its pods behind it.
 *
 * @param index 1-based
 * @param name the Kubernetes node name to give it, e.g. {@code node-1}
 * @param ns the network namespace
 * @param ip its address on the node network, e.g. {@code 198.18.0.11}
 * @param uplink its interface on the node network
 */
public record LabNode(int index, String name, String ns, String ip, String uplink) {
}
