package io.natgate.plan;

import io.fabric8.kubernetes.api.model.LabelSelector;
import io.fabric8.kubernetes.api.model.LabelSelectorRequirement;
import java.util.List;
import java.util.Map;

/** metav1.LabelSelector semantics. A null selector matches everything, as an empty one does. */
public final class LabelSelectors {
  private LabelSelectors() {
  }

  public static boolean matches(LabelSelector selector, Map<String, String> labels) {
    if (selector == null) {
      return true;
    }
    Map<String, String> actual = labels == null ? Map.of() : labels;
    if (selector.getMatchLabels() != null) {
      for (var e : selector.getMatchLabels().entrySet()) {
        if (!e.getValue().equals(actual.get(e.getKey()))) {
          return false;
        }
      }
    }
    if (selector.getMatchExpressions() != null) {
      for (LabelSelectorRequirement r : selector.getMatchExpressions()) {
        if (!matches(r, actual)) {
          return false;
        }
      }
    }
    return true;
  }

  /** What the API server's schema cannot check in a selector: operators and their values. */
  public static List<String> problems(String field, LabelSelector selector) {
    if (selector == null || selector.getMatchExpressions() == null) {
      return List.of();
    }
    List<String> problems = new java.util.ArrayList<>();
    for (LabelSelectorRequirement r : selector.getMatchExpressions()) {
      boolean hasValues = r.getValues() != null && !r.getValues().isEmpty();
      String where = field + ".matchExpressions[key=" + r.getKey() + "]";
      switch (String.valueOf(r.getOperator())) {
        case "In", "NotIn" -> {
          if (!hasValues) {
            problems.add(where + ": operator " + r.getOperator() + " needs values");
          }
        }
        case "Exists", "DoesNotExist" -> {
          if (hasValues) {
            problems.add(where + ": operator " + r.getOperator() + " takes no values");
          }
        }
        default -> problems.add(where + ": unknown operator " + r.getOperator()
            + " (In, NotIn, Exists, DoesNotExist)");
      }
    }
    return problems;
  }

  private static boolean matches(LabelSelectorRequirement r, Map<String, String> labels) {
    String value = labels.get(r.getKey());
    List<String> values = r.getValues() == null ? List.of() : r.getValues();
    return switch (r.getOperator()) {
      case "In" -> value != null && values.contains(value);
      case "NotIn" -> value == null || !values.contains(value);
      case "Exists" -> labels.containsKey(r.getKey());
      case "DoesNotExist" -> !labels.containsKey(r.getKey());
      // The CRD refuses other operators; an unknown one selects nothing rather than everything.
      default -> false;
    };
  }
}
