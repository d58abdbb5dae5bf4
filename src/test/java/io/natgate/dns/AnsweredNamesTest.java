package io.natgate.dns;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class AnsweredNamesTest {
  final AtomicLong now = new AtomicLong();
  final AnsweredNames names = new AnsweredNames(now::get);

  @Test
  void anAddressIsNamedUntilItsPairsExpireAndByTheLastAnswer() {
    names.answered("api.payments.example", "203.0.113.20", 6);
    assertThat(names.nameOf("203.0.113.20")).isEqualTo("api.payments.example");
    assertThat(names.nameOf("203.0.113.21")).isNull();
    now.addAndGet(5_000_000_000L);
    names.answered("www.cdn.payments.example", "203.0.113.20", 2);
    assertThat(names.nameOf("203.0.113.20")).isEqualTo("www.cdn.payments.example");
    now.addAndGet(2_000_000_001L);
    assertThat(names.nameOf("203.0.113.20")).isNull();
  }

  @Test
  void whenFullExpiredNamesMakeRoomAndLiveOnesAreKept() {
    for (int i = 0; i < AnsweredNames.MAX; i++) {
      names.answered("a.example", "10." + (i >> 16) + "." + (i >> 8 & 255) + "." + (i & 255), i < 10 ? 1 : 60);
    }
    names.answered("b.example", "203.0.113.9", 5);
    assertThat(names.nameOf("203.0.113.9")).as("no room: every name is live").isNull();
    now.addAndGet(1_000_000_001L);
    names.answered("b.example", "203.0.113.9", 5);
    assertThat(names.nameOf("203.0.113.9")).isEqualTo("b.example");
    assertThat(names.nameOf("10.0.0.200")).isEqualTo("a.example");
  }
}
