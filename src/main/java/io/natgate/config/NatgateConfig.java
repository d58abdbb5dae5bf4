package io.natgate.config;

import static io.natgate.connlog.ConnectionLog.Settings.KEEP_FILES;
import static io.natgate.connlog.ConnectionLog.Settings.MAX_FILE_BYTES;
import static io.natgate.connlog.ConnectionLog.Settings.QUEUE_SIZE;
import static io.natgate.connlog.ConnectionLog.Settings.SOCKET_BUFFER_BYTES;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.time.Duration;
import java.util.List;
import java.util.Optional;

/** All of natgate's own settings ({@code natgate.*} in application.properties or NATGATE_* variables). */
@ConfigMapping(prefix = "natgate")
public interface NatgateConfig {
  /** Pod and service networks of the cluster: never steered to a gateway. */
  Optional<List<String>> clusterCidrs();

  /** Namespace that holds the Events about (cluster-scoped) EgressGateways. */
  @WithDefault("default")
  String eventNamespace();

  LeaderElection leaderElection();

  /** operator (default) or agent (the node agent; the {@code agent} profile sets it). */
  @WithDefault("operator")
  String mode();

  Heartbeat heartbeat();

  Agent agent();

  /** The agents' node Leases: the operator's failure detector, and the agents' self-fencing clock. */
  interface Heartbeat {
    /** Namespace of the Leases {@code natgate-agent-<node>}. */
    @WithDefault("natgate-system")
    String namespace();

    /** How often an agent renews its Lease. */
    @WithDefault("200ms")
    Duration renewInterval();

    /** Operator: a node whose Lease was not renewed for this long may not hold egress IPs. */
    @WithDefault("900ms")
    Duration timeout();

    /** Agent: releases its egress IPs when it could not renew for this long (less than timeout: never two holders). */
    @WithDefault("600ms")
    Duration fenceAfter();
  }

  interface Agent {
    /** This node's name (the DaemonSet passes spec.nodeName). */
    Optional<String> nodeName();

    /** This node's InternalIP (status.hostIP); the uplink is the interface that holds it. */
    Optional<String> nodeIp();

    /** The uplink interface, when it should not be found from the node IP. */
    Optional<String> uplink();

    /** How often the agent compares the kernel with what it applied and puts back what is missing. */
    @WithDefault("10s")
    Duration repairInterval();

    /** UDP port of the VXLAN-GPE tunnel between nodes. */
    @WithDefault("4790")
    int tunnelPort();

    /** fwmark bits natgate may use; must not overlap the CNI's or kube-proxy's (0x4000, 0x8000). */
    @WithDefault("0x0ff00000")
    String markMask();

    /** Routing table of the first mark value; natgate uses the next 255 after it. */
    @WithDefault("7400")
    int tableBase();

    /** Priority of natgate's policy routing rules. */
    @WithDefault("7400")
    int rulePriority();

    /** Where the connection log goes; whether a gateway logs at all is its spec.connectionLog. */
    ConnectionLog connectionLog();
  }

  /** {@code natgate.agent.connection-log.*}: docs/connection-log.md. */
  interface ConnectionLog {
    /** A file to write the records to, rotated by size; unset: the agent's standard output. */
    Optional<String> file();

    /** Rotate the file when it reaches this many bytes. */
    @WithDefault(MAX_FILE_BYTES)
    long maxFileBytes();

    /** Rotated files kept beside the current one. */
    @WithDefault(KEEP_FILES)
    int keepFiles();

    /** Records waiting to be written; beyond it new records are dropped and counted. */
    @WithDefault(QUEUE_SIZE)
    int queueSize();

    /** Receive buffer of the conntrack event socket: the kernel's room for a burst the agent has not read yet. */
    @WithDefault(SOCKET_BUFFER_BYTES)
    int socketBufferBytes();
  }

  interface LeaderElection {
    /** Namespace of the leader Lease; defaults to the operator pod's namespace. */
    Optional<String> namespace();
  }
}
