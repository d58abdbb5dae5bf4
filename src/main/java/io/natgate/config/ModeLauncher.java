package io.natgate.config;

import io.javaoperatorsdk.operator.Operator;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;

/**
 * Starts and stops the operator. Quarkus runs only in operator mode: agent mode ({@code QUARKUS_PROFILE=agent}) starts
 * without it ({@link io.natgate.launch.Main}).
 */
@ApplicationScoped
public class ModeLauncher {
  @Inject
  Operator operator;
  @Inject
  LeaderLease leaderLease;

  void start(@Observes StartupEvent event) {
    operator.start(); // leader election, informers, reconciler: as the operator SDK would have started it
  }

  void stop(@Observes ShutdownEvent event) {
    leaderLease.stopping();
    operator.stop(); // the reconciler, the informers, then the Lease, which a replacement takes at once
  }
}
