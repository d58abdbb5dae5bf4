package io.natgate.agent;

import io.fabric8.kubernetes.api.model.coordination.v1.Lease;
import io.fabric8.kubernetes.api.model.coordination.v1.LeaseBuilder;
import io.fabric8.kubernetes.client.Config;
import io.fabric8.kubernetes.client.ConfigBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientBuilder;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.fabric8.kubernetes.client.http.HttpClient;
import io.fabric8.kubernetes.client.utils.HttpClientUtils;
import io.natgate.plan.NodeReadiness;
import java.time.Duration;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.jboss.logging.Logger;

/**
 * Renews this node's Lease every few hundred milliseconds. When renewals stop succeeding for {@code fenceAfter}
 * (shorter than the operator's timeout) it counts as {@link #lost()} and calls {@code onLost}: the agent's holding
 * decision (io.natgate.peers) then drops the egress IPs of gateways that follow the Lease rule (peer groups too small
 * for a quorum) before the operator may give them to another node; {@code onRegained} when a renewal succeeds again;
 * {@code onRenewed} after every successful renewal (on the renewing thread: keep it short).
 */
public final class Heartbeat implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(Heartbeat.class);

  private final KubernetesClient client;
  private final String namespace;
  private final String node;
  private final Duration renewInterval;
  private final Duration timeout;
  private final Duration fenceAfter;
  private final Runnable onLost;
  private final Runnable onRegained;
  private final Runnable onRenewed;
  private final ScheduledExecutorService renewer = Executors.newSingleThreadScheduledExecutor(r -> thread(r, "renew"));
  private final ScheduledExecutorService watchdog = Executors.newSingleThreadScheduledExecutor(r -> thread(r, "fence"));
  private volatile long lastRenewStarted = System.nanoTime(); // a fresh agent gets fenceAfter to renew the first time
  private volatile boolean lost;
  private final CountDownLatch firstRenewal = new CountDownLatch(1);
  private Lease lease;

  public Heartbeat(KubernetesClient client, String namespace, String node, Duration renewInterval, Duration timeout,
      Duration fenceAfter, Runnable onLost, Runnable onRegained, Runnable onRenewed) {
    this.client = client;
    this.namespace = namespace;
    this.node = node;
    this.renewInterval = renewInterval;
    this.timeout = timeout;
    this.fenceAfter = fenceAfter;
    this.onLost = onLost;
    this.onRegained = onRegained;
    this.onRenewed = onRenewed;
  }

  /**
   * A client for renewals: requests time out after {@code fenceAfter} and are not retried, because a renewal that
   * arrives later than that is worth nothing (the agent has fenced itself by then).
   */
  public static KubernetesClient client(Config config, Duration fenceAfter, HttpClient.Factory factory) {
    int ms = (int) fenceAfter.toMillis();
    return new KubernetesClientBuilder().withHttpClientFactory(factory).withConfig(new ConfigBuilder(config)
        .withRequestTimeout(ms).withConnectionTimeout(ms).withRequestRetryBackoffLimit(0).build()).build();
  }

  /** {@link #client(Config, Duration, HttpClient.Factory)} on the HTTP client found on the class path. */
  public static KubernetesClient client(Config config, Duration fenceAfter) {
    return client(config, fenceAfter, HttpClientUtils.getHttpClientFactory());
  }

  public static String leaseName(String node) {
    return NodeReadiness.LEASE_PREFIX + node;
  }

  public Heartbeat start() {
    renewer.scheduleWithFixedDelay(this::renew, 0, renewInterval.toMillis(), TimeUnit.MILLISECONDS);
    watchdog.scheduleWithFixedDelay(this::checkFence, 0, Math.max(10, renewInterval.toMillis() / 4),
        TimeUnit.MILLISECONDS);
    return this;
  }

  /** Waits for the first successful renewal, so that the agent takes egress IPs only with a live Lease. */
  public boolean awaitFirstRenewal(Duration max) throws InterruptedException {
    return firstRenewal.await(max.toMillis(), TimeUnit.MILLISECONDS);
  }

  /** Seconds since the start of the last successful renewal. */
  public double ageSeconds() {
    return (System.nanoTime() - lastRenewStarted) / 1e9;
  }

  public boolean lost() {
    return lost;
  }

  private void renew() {
    long started = System.nanoTime();
    // The Lease records when this attempt started: the operator counts its timeout from there, and so do we.
    ZonedDateTime now = ZonedDateTime.now(ZoneOffset.UTC);
    try {
      if (lease == null) {
        lease = client.leases().inNamespace(namespace).withName(leaseName(node)).get();
      }
      if (lease == null) {
        lease = client.leases().inNamespace(namespace).resource(new LeaseBuilder().withNewMetadata()
            .withName(leaseName(node)).withNamespace(namespace).addToLabels(NodeReadiness.NODE_LABEL, node).endMetadata()
            .withNewSpec().withHolderIdentity(node).withLeaseDurationSeconds((int) Math.max(1, timeout.toSeconds()))
            .withAcquireTime(now).withRenewTime(now).endSpec().build()).create();
      } else {
        lease.getSpec().setRenewTime(now);
        lease.getSpec().setHolderIdentity(node);
        lease = client.leases().inNamespace(namespace).resource(lease).update();
      }
      lastRenewStarted = started;
      if (firstRenewal.getCount() > 0) {
        firstRenewal.countDown();
        // A cold process's first renewal is slow (its TLS handshake, its classes: 0.5 s on a loaded node), and the next
        // would start a renewal interval after its end: together past fenceAfter, a release right after the start.
        renewer.execute(this::renew);
      }
      if (System.nanoTime() - started > fenceAfter.toNanos()) {
        // Done past the fence deadline (a slow request): the Lease is already that old, so it proves nothing about
        // now. Fence at once, as the watchdog would at its next tick, rather than count the Lease as regained.
        checkFence();
      } else {
        regained(started);
      }
      onRenewed.run();
    } catch (KubernetesClientException e) {
      lease = null; // conflict or gone: read it again next time
      LOG.debugf("Lease renewal failed: %s", e.getMessage());
    } catch (RuntimeException e) {
      lease = null;
      LOG.warnf("Lease renewal failed: %s", e.toString());
    }
  }

  private synchronized void regained(long started) {
    if (lost) {
      lost = false;
      LOG.infof("Lease %s renewed again after %.1f s", leaseName(node), (System.nanoTime() - started) / 1e9);
      onRegained.run();
    }
  }

  private synchronized void checkFence() {
    if (!lost && System.nanoTime() - lastRenewStarted > fenceAfter.toNanos()) {
      lost = true;
      LOG.warnf("Lease %s not renewed for %d ms (gateways whose group is too small for a quorum release their IPs)",
          leaseName(node), (System.nanoTime() - lastRenewStarted) / 1_000_000);
      try {
        onLost.run();
      } catch (RuntimeException e) {
        LOG.errorf(e, "Releasing egress IPs failed");
      }
    }
  }

  @Override
  public void close() {
    renewer.shutdownNow();
    watchdog.shutdownNow();
  }

  private static Thread thread(Runnable r, String name) {
    Thread t = new Thread(r, "heartbeat-" + name);
    t.setDaemon(true);
    return t;
  }
}
