package io.natgate.api.v1alpha1;

import io.fabric8.generator.annotation.Pattern;
import io.fabric8.generator.annotation.Required;
import io.fabric8.generator.annotation.Size;
import io.fabric8.generator.annotation.ValidationRule;
import java.util.List;
import java.util.Map;

/**
 * The CRD schema of the spec's label selectors (the fields stay fabric8's {@code LabelSelector}; this class only
 * describes them, through {@code @SchemaFrom}): admission refuses what Kubernetes refuses in its own workloads'
 * selectors. Never instantiated.
 */
final class SelectorSchema {
  /** A label key: an optional DNS-subdomain prefix and '/', then a name of 1-63 alphanumerics, '-', '_', '.'. */
  static final String KEY = "^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
      + "[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";
  /** A label value: empty, or 1-63 alphanumerics, '-', '_', '.', starting and ending alphanumeric. */
  static final String VALUE = "^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$";
  /** Prefix (253), '/', name (63). */
  static final int KEY_MAX = 317;

  private SelectorSchema() {
  }

  @Size(max = 64)
  @ValidationRule(value = "self.all(k, size(k) <= " + KEY_MAX + " && k.matches('" + KEY + "'))",
      message = "matchLabels keys must be label keys: an optional DNS prefix and '/', then up to 63 letters, digits, "
          + "'-', '_' or '.', starting and ending with a letter or digit")
  public Map<String, @Size(max = 63) @Pattern(VALUE) String> matchLabels;

  @Size(max = 64)
  public List<Requirement> matchExpressions;

  @ValidationRule(value = "self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0"
      + " : !has(self.values) || size(self.values) == 0",
      message = "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist")
  static final class Requirement {
    @Required
    @Size(max = KEY_MAX)
    @Pattern(KEY)
    public String key;

    @Required
    public Operator operator;

    @Size(max = 64)
    public List<@Size(max = 63) @Pattern(VALUE) String> values;
  }

  enum Operator {
    In, NotIn, Exists, DoesNotExist
  }
}
