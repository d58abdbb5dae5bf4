package io.natgate.connlog;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.natgate.dataplane.SnatPorts;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Turns conntrack events into records, remembering each connection from its start to its end: the end record names
 * the pod the start did, even when the pod is gone by then. Counts the metrics of docs/metrics.md on the way.
 * Not thread-safe: the log's writer thread owns it.
 */
final class Tracker {
  /** What the start of a connection established, kept until its end. */
  private record Flow(String gateway, String pod, String start, PortUse.Destination destination) {
  }

  /** The counters of one gateway and egress IP. */
  private record Meters(Counter started, AtomicLong active, Counter bytesOut, Counter bytesIn) {
  }

  private final String node;
  private final MeterRegistry registry;
  private final Map<Long, Flow> flows = new HashMap<>();
  private final Map<String, Meters> meters = new HashMap<>();
  private final PortUse portUse;
  /** Highest port use per egress IP, as of the last {@link #refreshPortUse}; read by the gauges on any thread. */
  private final Map<String, Double> topPortUse = new ConcurrentHashMap<>();

  Tracker(String node, MeterRegistry registry, SnatPorts ports) {
    this.node = node;
    this.registry = registry;
    this.portUse = new PortUse(ports);
  }

  ConnectionRecord record(ConntrackEvent e, Directory directory) {
    if (e.type() == ConntrackEvent.Type.NEW) {
      String gateway = directory.gatewayByEgressIP().get(e.replyDstIP());
      String pod = directory.podByIP().get(e.srcIP());
      var destination = new PortUse.Destination(e.replyDstIP(), e.protocol(), e.dstIP(), e.dstPort());
      Flow previous = flows.put(e.id(), new Flow(gateway, pod, e.time().toString(), destination));
      if (previous != null) {
        end(previous); // its end event was lost
      }
      portUse.add(destination);
      Meters m = meters(gateway, e.replyDstIP());
      m.started().increment();
      m.active().incrementAndGet();
      return ConnectionRecord.of(e, node, gateway, pod, null);
    }
    Flow flow = flows.remove(e.id());
    String gateway = flow != null ? flow.gateway() : directory.gatewayByEgressIP().get(e.replyDstIP());
    String pod = flow != null ? flow.pod() : directory.podByIP().get(e.srcIP());
    Meters m = meters(gateway, e.replyDstIP());
    if (flow != null) {
      end(flow);
    }
    if (e.bytesOut() != null) {
      m.bytesOut().increment(e.bytesOut());
      m.bytesIn().increment(e.bytesIn() == null ? 0 : e.bytesIn());
    }
    return ConnectionRecord.of(e, node, gateway, pod, flow == null ? null : flow.start());
  }

  private void end(Flow flow) {
    portUse.remove(flow.destination());
    meters(flow.gateway(), flow.destination().egressIP()).active().decrementAndGet();
  }

  /** Connections seen starting and not yet ending. */
  int active() {
    return flows.size();
  }

  PortUse portUse() {
    return portUse;
  }

  /** Publishes the highest port use of each egress IP to the gauges. */
  void refreshPortUse() {
    Map<String, PortUse.Use> top = portUse.topByEgressIP();
    topPortUse.keySet().forEach(ip -> topPortUse.put(ip, top.containsKey(ip) ? top.get(ip).ratio() : 0.0));
    top.forEach((ip, use) -> topPortUse.put(ip, use.ratio()));
  }

  private Meters meters(String gateway, String egressIP) {
    String g = gateway == null ? "" : gateway;
    return meters.computeIfAbsent(g + " " + egressIP, k -> {
      Tags tags = Tags.of("gateway", g, "egress_ip", egressIP);
      AtomicLong active = registry.gauge("natgate_agent_connections_active", tags, new AtomicLong());
      registry.gauge("natgate_agent_snat_port_use_ratio", tags, topPortUse,
          m -> m.getOrDefault(egressIP, 0.0));
      return new Meters(
          Counter.builder("natgate_agent_connections_started_total").tags(tags)
              .description("Connections the gateway translated, by their start").register(registry),
          active,
          Counter.builder("natgate_agent_connection_bytes_total").tags(tags.and("direction", "out"))
              .description("Bytes of ended connections, out: pod to destination, in: back").register(registry),
          Counter.builder("natgate_agent_connection_bytes_total").tags(tags.and("direction", "in"))
              .description("Bytes of ended connections, out: pod to destination, in: back").register(registry));
    });
  }
}
