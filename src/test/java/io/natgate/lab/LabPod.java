package io.natgate.lab;

/**
 * A pod of the {@link NetworkLab}: a namespace behind its node's veth, Calico style.
 *
 * @param name the Kubernetes pod name to give it, e.g. {@code pod-1-2}
 * @param ns the network namespace
 * @param ip its /32 address, {@code 198.19.<node>.<10 + index>}
 * @param node the 1-based index of its node
 * @param index 1-based, among the pods of its node
 * @param probePort the external echo server's port that only this pod connects to, so arrivals can be told apart
 * @param hostVeth the node's end of its veth
 */
public record LabPod(String name, String ns, String ip, int node, int index, int probePort, String hostVeth) {
}
