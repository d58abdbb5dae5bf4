package io.natgate.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.generator.annotation.ValidationRule;
import io.fabric8.crd.generator.annotation.SchemaFrom;
import io.fabric8.kubernetes.api.model.LabelSelector;
import java.util.Objects;

@ValidationRule(value = "has(self.namespaceSelector) || has(self.podSelector)",
    message = "sources must set namespaceSelector, podSelector, or both")
@JsonInclude(JsonInclude.Include.NON_NULL)
public class Sources {
  @JsonPropertyDescription("Namespaces whose pods are selected. Absent: every namespace. {} also selects every namespace.")
  @SchemaFrom(type = SelectorSchema.class)
  public LabelSelector namespaceSelector;

  @JsonPropertyDescription("Pods selected within the selected namespaces. Absent or {}: every pod there.")
  @SchemaFrom(type = SelectorSchema.class)
  public LabelSelector podSelector;

  public Sources() {
  }

  public Sources(LabelSelector namespaceSelector, LabelSelector podSelector) {
    this.namespaceSelector = namespaceSelector;
    this.podSelector = podSelector;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Sources s && Objects.equals(namespaceSelector, s.namespaceSelector)
        && Objects.equals(podSelector, s.podSelector);
  }

  @Override
  public int hashCode() {
    return Objects.hash(namespaceSelector, podSelector);
  }
}
