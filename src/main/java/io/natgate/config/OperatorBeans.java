package io.natgate.config;

import io.javaoperatorsdk.operator.api.config.LeaderElectionConfiguration;
import io.natgate.reconcile.OperatorSettings;
import jakarta.enterprise.inject.Produces;
import jakarta.inject.Singleton;
import java.util.List;

/** Turns the typed configuration into what the operator SDK and the reconciler take. */
public class OperatorBeans {
  public static final String LEASE_NAME = "natgate-operator-leader";

  @Produces
  @Singleton
  OperatorSettings settings(NatgateConfig config) {
    return new OperatorSettings(config.clusterCidrs().orElse(List.of()), config.eventNamespace(),
        config.heartbeat().namespace(), config.heartbeat().timeout(), config.peers().enabled());
  }

  /** Only one replica reconciles at a time; the others wait on the Lease. */
  @Produces
  @Singleton
  LeaderElectionConfiguration leaderElection(NatgateConfig config) {
    return config.leaderElection().namespace().map(ns -> new LeaderElectionConfiguration(LEASE_NAME, ns))
        .orElseGet(() -> new LeaderElectionConfiguration(LEASE_NAME));
  }
}
