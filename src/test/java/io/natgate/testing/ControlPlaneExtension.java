package io.natgate.testing;

import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;

/**
 * Starts one {@link ControlPlane} for the whole test run (kept in the root store, closed when the run ends) and
 * injects it into test constructors or methods.
 */
public class ControlPlaneExtension implements BeforeAllCallback, ParameterResolver {
  private static final ExtensionContext.Namespace NS = ExtensionContext.Namespace.create(ControlPlane.class);

  @Override
  public void beforeAll(ExtensionContext context) {
    get(context);
  }

  @Override
  public boolean supportsParameter(ParameterContext parameter, ExtensionContext context) {
    return parameter.getParameter().getType() == ControlPlane.class;
  }

  @Override
  public Object resolveParameter(ParameterContext parameter, ExtensionContext context) {
    return get(context);
  }

  private static ControlPlane get(ExtensionContext context) {
    return context.getRoot().getStore(NS).getOrComputeIfAbsent("controlPlane", k -> new Holder(new ControlPlane()),
        Holder.class).controlPlane;
  }

  private record Holder(ControlPlane controlPlane) implements ExtensionContext.Store.CloseableResource, AutoCloseable {
    @Override
    public void close() {
      controlPlane.close();
    }
  }
}
