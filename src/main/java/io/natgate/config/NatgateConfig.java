package io.natgate.config;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
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

  interface LeaderElection {
    /** Namespace of the leader Lease; defaults to the operator pod's namespace. */
    Optional<String> namespace();
  }
}
