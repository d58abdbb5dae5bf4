package io.natgate.config;

import static io.natgate.connlog.ConnectionLog.Settings.KEEP_FILES;
import static io.natgate.connlog.ConnectionLog.Settings.MAX_FILE_BYTES;
import static io.natgate.connlog.ConnectionLog.Settings.QUEUE_SIZE;
import static io.natgate.connlog.ConnectionLog.Settings.SOCKET_BUFFER_BYTES;

import io.natgate.Defaults;
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
  @WithDefault(Defaults.EVENT_NAMESPACE)
  String eventNamespace();

  LeaderElection leaderElection();

  /** operator (default) or agent (the node agent; the {@code agent} profile sets it). */
  @WithDefault("operator")
  String mode();

  Heartbeat heartbeat();

  Agent agent();

  Peers peers();

  /** Agents' heartbeats to each other on the node network: egress that does not depend on the API server. */
  interface Peers {
    /** Operator: publish peer groups (off: every gateway uses the Lease rule, as agents that cannot reach each other need). */
    @WithDefault("true")
    boolean enabled();

    /** UDP port on the node IP; must be open between nodes. */
    @WithDefault("" + Defaults.PEER_PORT)
    int port();

    /** How often an agent sends a heartbeat to each member of its groups. */
    @WithDefault(Defaults.PEER_INTERVAL_MS + "ms")
    Duration interval();

    /** A member not heard for this long is dead; a holder without a quorum for this long releases its IPs. */
    @WithDefault(Defaults.PEER_TIMEOUT_MS + "ms")
    Duration timeout();

    /** Added to the timeout before a standby takes over an IP whose holder went silent (time to release it). */
    @WithDefault(Defaults.PEER_TAKEOVER_MARGIN_MS + "ms")
    Duration takeoverMargin();
  }

  /** The agents' node Leases: the operator's failure detector, and the agents' self-fencing clock. */
  interface Heartbeat {
    /** Namespace of the Leases {@code natgate-agent-<node>}. */
    @WithDefault(Defaults.HEARTBEAT_NAMESPACE)
    String namespace();

    /** How often an agent renews its Lease. */
    @WithDefault(Defaults.RENEW_INTERVAL_MS + "ms")
    Duration renewInterval();

    /** Operator: a node whose Lease was not renewed for this long may not hold egress IPs. */
    @WithDefault(Defaults.HEARTBEAT_TIMEOUT_MS + "ms")
    Duration timeout();

    /** Agent: releases its egress IPs when it could not renew for this long (less than timeout: never two holders). */
    @WithDefault(Defaults.FENCE_AFTER_MS + "ms")
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
    @WithDefault(Defaults.REPAIR_INTERVAL_S + "s")
    Duration repairInterval();

    /** UDP port of the VXLAN-GPE tunnel between nodes. */
    @WithDefault("" + Defaults.TUNNEL_PORT)
    int tunnelPort();

    /** fwmark and connmark bits natgate may use; must not overlap the CNI's or kube-proxy's (0x4000, 0x8000). */
    @WithDefault(Defaults.MARK_MASK)
    String markMask();

    /** Routing table of the first mark value; natgate uses the next 255 after it. */
    @WithDefault("" + Defaults.TABLE_BASE)
    int tableBase();

    /** Priority of natgate's policy routing rules. */
    @WithDefault("" + Defaults.RULE_PRIORITY)
    int rulePriority();

    /**
     * Unix socket the natgate-cni plugin asks at pod start (the DaemonSet sets /run/natgate/cni.sock). Absent: no
     * CNI endpoint, and pods are added to the node's sets only by the operator's node states.
     */
    Optional<String> cniSocket();

    /** The node's CNI bin directory as mounted in the agent: natgate-cni is installed there (with cni-conf-dir). */
    Optional<String> cniBinDir();

    /** The node's CNI configuration directory as mounted: natgate-cni is chained in a conflist of its own there. */
    Optional<String> cniConfDir();

    /** The natgate-cni binary in the agent's image. */
    @WithDefault("/opt/natgate/natgate-cni")
    String cniPlugin();

    /**
     * The agent's own DaemonSet (in the heartbeat namespace). When it is gone or being deleted as the agent stops,
     * natgate is being uninstalled: the agent removes its kernel state; otherwise (a restart) it keeps it.
     */
    Optional<String> daemonSet();

    /**
     * Where the agent reads and writes kernel settings (rp_filter of the tunnel, conntrack accounting). A container's
     * own /proc/sys is read-only, so the DaemonSet mounts the node's /proc/sys/net at /host/proc/sys/net.
     */
    @WithDefault(io.natgate.dataplane.Kernel.PROC_SYS)
    String procSys();

    /**
     * SNAT source ports, FIRST-LAST (e.g. 20000-29999); unset: the kernel's choice (the pod's own port, or one in
     * 1024-65535). Port use per destination is measured against this range (docs/metrics.md).
     */
    Optional<String> snatPorts();

    /** Where the connection log goes; whether a gateway logs at all is its spec.connectionLog. */
    ConnectionLog connectionLog();

    /** The DNS path of gateways whose allow list has names (docs/dns-path.md). */
    Dns dns();
  }

  /** {@code natgate.agent.dns.*}: docs/dns-path.md. */
  interface Dns {
    /** false: no DNS proxy (names in allow lists then allow nothing). */
    @WithDefault("true")
    boolean enabled();

    /** The resolver the proxy asks, host or host:port; unset: the first nameserver of the agent's /etc/resolv.conf. */
    Optional<String> upstream();

    /** The proxy's UDP and TCP port on the node IP, where the followed pods' queries are redirected. */
    @WithDefault("" + Defaults.DNS_PROXY_PORT)
    int proxyPort();

    /** UDP port of the (pod, address) pairs between agents (open it between nodes, like the peers' port). */
    @WithDefault("" + Defaults.DNS_PAIR_PORT)
    int pairPort();

    /** Added to each answer's TTL before its addresses leave the gateway's sets. */
    @WithDefault(Defaults.DNS_GRACE_S + "s")
    Duration grace();

    /** How long an answer waits for the gateway's confirmation; then failurePolicy decides (Drop: SERVFAIL). */
    @WithDefault(Defaults.DNS_CONFIRM_TIMEOUT_MS + "ms")
    Duration confirmTimeout();
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
