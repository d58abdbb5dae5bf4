package io.natgate.config;

import io.fabric8.kubernetes.client.extended.leaderelection.LeaderCallbacks;
import io.javaoperatorsdk.operator.api.config.LeaderElectionConfiguration;
import io.javaoperatorsdk.operator.api.config.LeaderElectionConfigurationBuilder;
import io.natgate.reconcile.OperatorSettings;
import jakarta.enterprise.inject.Produces;
import jakarta.inject.Singleton;
import java.util.List;

/** Turns the typed configuration into what the operator SDK and the reconciler take. */
public class OperatorBeans {
  public static final String LEASE_NAME = LeaderLease.NAME;

  @Produces
  @Singleton
  OperatorSettings settings(NatgateConfig config) {
    return new OperatorSettings(config.clusterCidrs().orElse(List.of()), config.eventNamespace(),
        config.heartbeat().namespace(), config.heartbeat().timeout(), config.peers().enabled());
  }

  /** Only one replica reconciles at a time; the others wait on the Lease. Losing it, giving it up: {@link LeaderLease}. */
  @Produces
  @Singleton
  LeaderElectionConfiguration leaderElection(NatgateConfig config, LeaderLease lease) {
    return LeaderElectionConfigurationBuilder.aLeaderElectionConfiguration(LEASE_NAME)
        .withLeaseNamespace(config.leaderElection().namespace().orElse(null))
        .withIdentity(lease.identity())
        .withLeaderCallbacks(new LeaderCallbacks(() -> { }, lease::stoppedLeading, leader -> { }))
        .withExitOnStopLeading(false)
        .build();
  }
}
