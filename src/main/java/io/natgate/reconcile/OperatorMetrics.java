package io.natgate.reconcile;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.Timer;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.EgressGatewayStatus;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.plan.GatewayPlan;
import io.natgate.plan.ProgrammedState;
import io.natgate.plan.StatusCalculator;
import io.natgate.plan.StatusEvents;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;

/**
 * The operator's per-gateway metrics (docs/metrics.md): readiness, live candidates, whether each egress IP has a
 * holder, SNAT port pressure, failovers and their duration. Labels are gateway names and egress IPs only.
 */
final class OperatorMetrics {
  /** Failover buckets: the design's goal is well under a second; an API-bound move takes seconds. */
  private static final Duration[] FAILOVER_BUCKETS = {Duration.ofMillis(100), Duration.ofMillis(250),
      Duration.ofMillis(500), Duration.ofMillis(750), Duration.ofSeconds(1), Duration.ofMillis(1500),
      Duration.ofSeconds(2), Duration.ofSeconds(5), Duration.ofSeconds(10), Duration.ofSeconds(30)};

  private final class Gateway {
    final String name;
    final AtomicInteger ready = new AtomicInteger();
    final AtomicInteger liveCandidates = new AtomicInteger();
    final AtomicInteger portPressure = new AtomicInteger();
    final Map<String, AtomicInteger> holders = new ConcurrentHashMap<>();
    final FailoverClock clock = new FailoverClock();
    final List<Meter> meters = new ArrayList<>();
    final Counter failovers;
    final Timer failoverTime;

    Gateway(String name) {
      this.name = name;
      Tags tags = Tags.of("gateway", name);
      registry.gauge("natgate_operator_gateway_ready", tags, ready);
      registry.gauge("natgate_operator_gateway_live_candidates", tags, liveCandidates);
      registry.gauge("natgate_operator_snat_port_pressure", tags, portPressure);
      failovers = Counter.builder("natgate_operator_failovers_total").tags(tags)
          .description("Egress IPs moved because their holder failed").register(registry);
      failoverTime = Timer.builder("natgate_operator_failover_seconds").tags(tags)
          .description("From a holder judged dead to the new holder's report that it applied the move")
          .serviceLevelObjectives(FAILOVER_BUCKETS).register(registry);
      meters.add(failovers);
      meters.add(failoverTime);
      for (String n : List.of("natgate_operator_gateway_ready", "natgate_operator_gateway_live_candidates",
          "natgate_operator_snat_port_pressure")) {
        meters.add(registry.get(n).tags(tags).gauge());
      }
    }

    void holders(String ip, int count) {
      holders.computeIfAbsent(ip, k -> {
        AtomicInteger value = new AtomicInteger();
        registry.gauge("natgate_operator_egress_ip_holders", Tags.of("gateway", name, "egress_ip", ip), value);
        meters.add(registry.get("natgate_operator_egress_ip_holders").tags("gateway", name, "egress_ip", ip).gauge());
        return value;
      }).set(count);
    }
  }

  private final MeterRegistry registry;
  private final Map<String, Gateway> gateways = new ConcurrentHashMap<>();

  OperatorMetrics(MeterRegistry registry) {
    this.registry = registry;
  }

  /**
   * After a reconcile decided {@code after} (written or not): the gauges, and the failovers that completed.
   *
   * @param deadSince when the heartbeat monitor judged a node's agent dead, or null
   */
  void observed(EgressGateway gateway, GatewayPlan plan, EgressGatewayStatus before, EgressGatewayStatus after,
      Map<String, EgressNodeState> states, Function<String, Instant> deadSince, Instant now) {
    String name = gateway.getMetadata().getName();
    Gateway g = gateways.computeIfAbsent(name, Gateway::new);
    g.ready.set(isTrue(after, StatusCalculator.READY) ? 1 : 0);
    g.portPressure.set(isTrue(after, StatusCalculator.SNAT_PORT_PRESSURE) ? 1 : 0);
    g.liveCandidates.set(plan.readyNodes().size());
    Map<String, String> assigned = StatusEvents.byIP(after.assignments);
    List<String> egressIPs = gateway.getSpec() == null ? List.of() : gateway.getSpec().egressIPs();
    egressIPs.forEach(ip -> g.holders(ip, assigned.containsKey(ip) ? 1 : 0));
    g.holders.keySet().stream().filter(ip -> !egressIPs.contains(ip)).toList().forEach(ip -> g.holders(ip, 0));
    Map<String, Duration> done = g.clock.observe(StatusEvents.byIP(before == null ? null : before.assignments), assigned,
        (ip, old) -> !plan.readyNodes().contains(old) || plan.takenOver().containsKey(ip),
        deadSince,
        node -> ProgrammedState.of(plan.nodeStates().get(node), states.get(node)) == ProgrammedState.PROGRAMMED, now);
    done.values().forEach(d -> {
      g.failovers.increment();
      g.failoverTime.record(d);
    });
  }

  /** The gateway is gone: its series go too. */
  void removed(String gateway) {
    Gateway g = gateways.remove(gateway);
    if (g != null) {
      g.meters.forEach(registry::remove);
    }
  }

  private static boolean isTrue(EgressGatewayStatus status, String type) {
    return status.conditions != null && status.conditions.stream()
        .anyMatch(c -> type.equals(c.getType()) && "True".equals(c.getStatus()));
  }

}
