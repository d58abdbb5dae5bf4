package io.natgate.e2e;

import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.Watch;
import io.fabric8.kubernetes.client.Watcher;
import io.fabric8.kubernetes.client.WatcherException;
import io.natgate.api.v1alpha1.EgressGateway;
import io.natgate.api.v1alpha1.EgressNodeState;
import io.natgate.api.v1alpha1.NodeGatewayState;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Collectors;

/**
 * What the API server said while a fault round ran, as this test's watches saw it, with times: the gateway's
 * {@code status.sourceIPs}, and each of its node states' writes (a new generation) and applies (its agent's
 * appliedGeneration). A watch sees a change a moment after it was made, so a source listed late is judged leniently
 * (see {@link #listedDuring}).
 */
final class StateTimeline implements AutoCloseable {
  record Entry(Instant at, String what) {
  }

  private record Listing(Instant at, List<String> sourceIPs) {
  }

  private final List<Entry> entries = new CopyOnWriteArrayList<>();
  private final List<Listing> listings = new CopyOnWriteArrayList<>();
  private final Map<String, Long> generations = new ConcurrentHashMap<>();
  private final Map<String, Long> applied = new ConcurrentHashMap<>();
  private final Watch gatewayWatch;
  private final Watch stateWatch;

  StateTimeline(KubernetesClient client, String gateway) {
    EgressGateway now = client.resources(EgressGateway.class).withName(gateway).get();
    listings.add(new Listing(Instant.now(), sourceIPs(now)));
    gatewayWatch = client.resources(EgressGateway.class).withName(gateway).watch(new Watcher<>() {
      private String lastSaid;

      @Override
      public void eventReceived(Action action, EgressGateway g) {
        Instant at = Instant.now();
        List<String> ips = sourceIPs(g);
        if (!ips.equals(listings.get(listings.size() - 1).sourceIPs())) {
          listings.add(new Listing(at, ips));
        }
        String said = "status.sourceIPs " + ips + " draining " + (g.getStatus() == null ? null
            : g.getStatus().drainingSourceIPs);
        if (!said.equals(lastSaid)) {
          lastSaid = said;
          entries.add(new Entry(at, said));
        }
      }

      @Override
      public void onClose(WatcherException cause) {
      }
    });
    stateWatch = client.resources(EgressNodeState.class).watch(new Watcher<>() {
      @Override
      public void eventReceived(Action action, EgressNodeState st) {
        if (st.getSpec() == null || !gateway.equals(st.getSpec().gateway)) {
          return;
        }
        Instant at = Instant.now();
        String node = st.getSpec().nodeName;
        Long generation = st.getMetadata().getGeneration();
        if (!Objects.equals(generations.put(node, generation), generation)) {
          entries.add(new Entry(at, node + " written (generation " + generation + "): " + summary(st.getSpec())));
        }
        Long done = st.getStatus() == null ? null : st.getStatus().appliedGeneration;
        if (done != null && !Objects.equals(applied.put(node, done), done)) {
          entries.add(new Entry(at, node + " applied generation " + done + ", holds " + st.getStatus().held));
        }
      }

      @Override
      public void onClose(WatcherException cause) {
      }
    });
  }

  private static List<String> sourceIPs(EgressGateway g) {
    return g == null || g.getStatus() == null ? List.of() : List.copyOf(g.getStatus().sourceIPs);
  }

  private static String summary(NodeGatewayState spec) {
    return "snat " + spec.snat.stream().map(s -> s.egressIP + "=" + s.sources).collect(Collectors.joining(" "))
        + "; steer " + spec.steer.stream().map(s -> s.egressIP + "@" + s.gatewayNode + "=" + s.sources)
        .collect(Collectors.joining(" "));
  }

  /**
   * Whether {@code ip} was in status.sourceIPs at some moment from {@code from} to {@code to} (a probe's packet left
   * then): listed when it was sent, or by the time its answer came.
   */
  boolean listedDuring(String ip, Instant from, Instant to) {
    Listing atStart = listings.get(0);
    for (Listing l : listings) {
      if (l.at().isAfter(from)) {
        if (l.at().isAfter(to)) {
          break;
        }
        if (l.sourceIPs().contains(ip)) {
          return true;
        }
      } else {
        atStart = l;
      }
    }
    return atStart.sourceIPs().contains(ip);
  }

  /** The entries within {@code window} of {@code at}, each with its offset from it in ms. */
  String around(Instant at, Duration window) {
    return entries.stream().filter(e -> Duration.between(at, e.at()).abs().compareTo(window) <= 0)
        .map(e -> String.format("      %+6d ms %s", Duration.between(at, e.at()).toMillis(), e.what()))
        .collect(Collectors.joining("\n"));
  }

  /** The status.sourceIPs changes seen, each with its offset from {@code from} in ms. */
  String statusChanges(Instant from) {
    return entries.stream().filter(e -> e.what().startsWith("status."))
        .map(e -> String.format("  %+6d ms %s", Duration.between(from, e.at()).toMillis(), e.what()))
        .collect(Collectors.joining("\n"));
  }

  @Override
  public void close() {
    gatewayWatch.close();
    stateWatch.close();
  }
}
