package io.natgate.launch;

import io.fabric8.kubernetes.client.Config;
import io.fabric8.kubernetes.client.ConfigBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientBuilder;
import io.fabric8.kubernetes.client.jdkhttp.JdkHttpClientFactory;
import io.micrometer.core.instrument.binder.jvm.ClassLoaderMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmGcMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmHeapPressureMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmMemoryMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmThreadMetrics;
import io.micrometer.core.instrument.binder.system.FileDescriptorMetrics;
import io.micrometer.core.instrument.binder.system.ProcessorMetrics;
import io.micrometer.core.instrument.binder.system.UptimeMetrics;
import io.micrometer.prometheus.PrometheusConfig;
import io.micrometer.prometheus.PrometheusMeterRegistry;
import io.natgate.config.NatgateConfig;
import io.quarkus.bootstrap.logging.InitialConfigurator;
import io.quarkus.runtime.configuration.DurationConverter;
import io.smallrye.config.ConfigMappings;
import io.smallrye.config.PropertiesConfigSource;
import io.smallrye.config.SmallRyeConfig;
import io.smallrye.config.SmallRyeConfigBuilder;
import io.smallrye.config.common.utils.StringUtil;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;
import java.util.regex.Pattern;
import java.util.logging.Handler;
import org.jboss.logging.Logger;
import org.jboss.logmanager.LogContext;
import org.jboss.logmanager.formatters.PatternFormatter;
import org.jboss.logmanager.handlers.ConsoleHandler;

/**
 * The node agent as a plain Java process: the configuration Quarkus would read (application.properties with the
 * active profiles, environment variables, system properties), its console log format, the Kubernetes client on the
 * JDK's HTTP client, and health and metrics on the same port and paths ({@link AgentEndpoints}).
 */
final class AgentProcess {
  private static final String CLIENT = "quarkus.kubernetes-client.";
  private static final Pattern CATEGORY = Pattern.compile("quarkus\\.log\\.category\\.\"?([^\"]+?)\"?\\.level");
  private static final Pattern CATEGORY_ENV = Pattern.compile("QUARKUS_LOG_CATEGORY__(.+)__LEVEL");

  /**
   * The quarkus.* settings the agent reads (with the log categories' levels, {@link #CATEGORY}); Quarkus's others
   * (its HTTP server's, the client's proxy...) mean nothing to it.
   */
  private static final Set<String> READ = Set.of("quarkus.profile", "quarkus.http.port", "quarkus.log.level",
      "quarkus.log.console.format", CLIENT + "api-server-url", CLIENT + "master-url", CLIENT + "trust-certs",
      CLIENT + "namespace", CLIENT + "token", CLIENT + "ca-cert-file", CLIENT + "connection-timeout",
      CLIENT + "request-timeout");

  private AgentProcess() {
  }

  /**
   * natgate's configuration as Quarkus would read it, with {@link NatgateConfig} not mapped yet: the operator's Quarkus
   * reads it again, the agent maps it once it knows its mode ({@link #run}).
   */
  static SmallRyeConfig config() {
    return sources().withValidateUnknown(false).build();
  }

  /** Whether natgate.mode is agent in {@code config}. */
  static boolean agentMode(SmallRyeConfig config) {
    return config.getOptionalValue("natgate.mode", String.class).filter("agent"::equals).isPresent();
  }

  /** {@link NatgateConfig} mapped on {@code config} (built once: reading the sources again cost tens of ms at start). */
  static NatgateConfig natgate(SmallRyeConfig config) {
    ConfigMappings.registerConfigMappings(config, Set.of(ConfigMappings.ConfigClass.configClass(NatgateConfig.class)));
    return config.getConfigMapping(NatgateConfig.class);
  }

  /** application.properties with the active profiles (quarkus.profile), environment variables, system properties. */
  private static SmallRyeConfigBuilder sources() {
    String profiles = System.getProperty("quarkus.profile", System.getenv().getOrDefault("QUARKUS_PROFILE", "prod"));
    var builder = new SmallRyeConfigBuilder().withProfiles(Arrays.asList(profiles.split(",")))
        .addDefaultSources().withConverter(Duration.class, 100, new DurationConverter());
    try {
      var resources = Main.class.getClassLoader().getResources("application.properties");
      while (resources.hasMoreElements()) {
        builder.withSources(new PropertiesConfigSource(resources.nextElement(), 250));
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return builder;
  }

  static void run(SmallRyeConfig config) {
    configureLogging(config);
    Logger log = Logger.getLogger(AgentProcess.class);
    var ignored = ignoredQuarkusSettings(System.getProperties().stringPropertyNames(), System.getenv().keySet());
    if (!ignored.isEmpty()) {
      log.warnf("ignored in agent mode (it reads quarkus.http.port, quarkus.log.level, quarkus.log.category.\"NAME\""
          + ".level, quarkus.log.console.format and quarkus.kubernetes-client's connection settings): %s", ignored);
    }
    try {
      var factory = new JdkHttpClientFactory();
      KubernetesClient client = new KubernetesClientBuilder().withHttpClientFactory(factory)
          .withConfig(clientConfig(config)).build();
      var metrics = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
      var launcher = new AgentLauncher(natgate(config), client);
      int port = config.getValue("quarkus.http.port", Integer.class);
      var endpoints = new AgentEndpoints(new InetSocketAddress(port), launcher, metrics).start();
      var stopped = new CountDownLatch(1);
      Runtime.getRuntime().addShutdownHook(new Thread(() -> {
        launcher.stop();
        endpoints.stop();
        client.close();
        stopped.countDown();
      }, "natgate-agent-stop"));
      log.infof("natgate-agent listening on port %d", port);
      launcher.start(factory, metrics);
      // The JVM's and the process's meters after the agent's start (tens of ms), which its first renewal overlaps.
      List.of(new ClassLoaderMetrics(), new JvmMemoryMetrics(), new JvmGcMetrics(), new JvmThreadMetrics(),
          new JvmHeapPressureMetrics(), new ProcessorMetrics(), new UptimeMetrics(), new FileDescriptorMetrics())
          .forEach(binder -> binder.bindTo(metrics));
      stopped.await(); // runs until SIGTERM, as Quarkus.run did
    } catch (RuntimeException e) {
      log.error("natgate-agent failed to start", e);
      System.exit(1);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /**
   * Quarkus's kubernetes-client settings over the client's own discovery (in-cluster service account, KUBECONFIG,
   * ~/.kube/config), as its extension applies them.
   */
  private static Config clientConfig(SmallRyeConfig config) {
    var b = new ConfigBuilder(Config.autoConfigure(null));
    config.getOptionalValue(CLIENT + "api-server-url", String.class)
        .or(() -> config.getOptionalValue(CLIENT + "master-url", String.class)).ifPresent(b::withMasterUrl);
    config.getOptionalValue(CLIENT + "trust-certs", Boolean.class).ifPresent(b::withTrustCerts);
    config.getOptionalValue(CLIENT + "namespace", String.class).ifPresent(b::withNamespace);
    config.getOptionalValue(CLIENT + "token", String.class).ifPresent(b::withOauthToken);
    config.getOptionalValue(CLIENT + "ca-cert-file", String.class).ifPresent(b::withCaCertFile);
    config.getOptionalValue(CLIENT + "connection-timeout", Duration.class)
        .ifPresent(d -> b.withConnectionTimeout((int) d.toMillis()));
    config.getOptionalValue(CLIENT + "request-timeout", Duration.class)
        .ifPresent(d -> b.withRequestTimeout((int) d.toMillis()));
    return b.build();
  }

  /**
   * The console handler Quarkus would install ({@code quarkus.log.console.format}), the root level
   * ({@code quarkus.log.level}, INFO) and the categories' ({@code quarkus.log.category."NAME".level}, also as
   * QUARKUS_LOG_CATEGORY__NAME__LEVEL).
   */
  private static void configureLogging(SmallRyeConfig config) {
    var context = LogContext.getLogContext();
    context.getLogger("").setLevel(context.getLevelForName(
        config.getOptionalValue("quarkus.log.level", String.class).orElse("INFO")));
    logCategories(config.getPropertyNames()).forEach(category -> config
        .getOptionalValue("quarkus.log.category.\"" + category + "\".level", String.class)
        .ifPresent(level -> context.getLogger(category).setLevel(context.getLevelForName(level))));
    var console = new ConsoleHandler(new PatternFormatter(config.getValue("quarkus.log.console.format", String.class)));
    // Records logged so far wait in Quarkus's start-up handler (the jar's log manager set-up): handed over here.
    InitialConfigurator.DELAYED_HANDLER.setHandlers(new Handler[] {console});
  }

  /**
   * Of the system properties and environment variables set, the quarkus.* settings (QUARKUS_* variables) the agent
   * does not read: a user who sets one expects an effect. (application.properties has the operator's too.)
   */
  static List<String> ignoredQuarkusSettings(Iterable<String> systemProperties, Iterable<String> environment) {
    Set<String> readAsVariables = new TreeSet<>();
    // The environment variable of each, named as SmallRye Config's environment source reads it.
    READ.forEach(name -> readAsVariables.add(StringUtil.replaceNonAlphanumericByUnderscores(name)
        .toUpperCase(Locale.ROOT)));
    Set<String> ignored = new TreeSet<>();
    systemProperties.forEach(name -> {
      if (name.startsWith("quarkus.") && !READ.contains(name) && !CATEGORY.matcher(name).matches()) {
        ignored.add(name);
      }
    });
    environment.forEach(name -> {
      if (name.startsWith("QUARKUS_") && !readAsVariables.contains(name) && !CATEGORY_ENV.matcher(name).matches()) {
        ignored.add(name);
      }
    });
    return List.copyOf(ignored);
  }

  /**
   * The log categories named in configuration: {@code quarkus.log.category."io.natgate".level}, or as an environment
   * variable QUARKUS_LOG_CATEGORY__IO_NATGATE__LEVEL (read back with dots, as Quarkus does).
   */
  static Set<String> logCategories(Iterable<String> propertyNames) {
    Set<String> categories = new TreeSet<>();
    for (String name : propertyNames) {
      var dotted = CATEGORY.matcher(name);
      var env = CATEGORY_ENV.matcher(name);
      if (dotted.matches()) {
        categories.add(dotted.group(1));
      } else if (env.matches()) {
        categories.add(env.group(1).toLowerCase(java.util.Locale.ROOT).replace('_', '.'));
      }
    }
    return categories;
  }
}
