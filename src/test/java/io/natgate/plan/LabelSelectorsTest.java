package io.natgate.plan;

import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.LabelSelector;
import io.fabric8.kubernetes.api.model.LabelSelectorBuilder;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class LabelSelectorsTest {
  private static final Map<String, String> LABELS = Map.of("team", "pay", "tier", "web");

  static Stream<Arguments> cases() {
    return Stream.of(
        Arguments.of(null, true),
        Arguments.of(new LabelSelector(), true),
        Arguments.of(sel().withMatchLabels(Map.of("team", "pay")).build(), true),
        Arguments.of(sel().withMatchLabels(Map.of("team", "ops")).build(), false),
        Arguments.of(sel().addNewMatchExpression().withKey("tier").withOperator("In").withValues("web", "api")
            .endMatchExpression().build(), true),
        Arguments.of(sel().addNewMatchExpression().withKey("tier").withOperator("NotIn").withValues("web")
            .endMatchExpression().build(), false),
        Arguments.of(sel().addNewMatchExpression().withKey("absent").withOperator("NotIn").withValues("x")
            .endMatchExpression().build(), true),
        Arguments.of(sel().addNewMatchExpression().withKey("team").withOperator("Exists").endMatchExpression().build(),
            true),
        Arguments.of(sel().addNewMatchExpression().withKey("team").withOperator("DoesNotExist").endMatchExpression()
            .build(), false),
        Arguments.of(sel().addNewMatchExpression().withKey("team").withOperator("Bogus").endMatchExpression().build(),
            false),
        Arguments.of(sel().withMatchLabels(Map.of("team", "pay")).addNewMatchExpression().withKey("tier")
            .withOperator("In").withValues("db").endMatchExpression().build(), false));
  }

  @ParameterizedTest
  @MethodSource("cases")
  void matches(LabelSelector selector, boolean expected) {
    assertThat(LabelSelectors.matches(selector, LABELS)).isEqualTo(expected);
  }

  private static LabelSelectorBuilder sel() {
    return new LabelSelectorBuilder();
  }
}
