package io.natgate.dns;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.xbill.DNS.ARecord;
import org.xbill.DNS.CNAMERecord;
import org.xbill.DNS.DClass;
import org.xbill.DNS.Flags;
import org.xbill.DNS.Message;
import org.xbill.DNS.Name;
import org.xbill.DNS.Record;
import org.xbill.DNS.Section;
import org.xbill.DNS.Type;

class DnsNamesTest {
  @Test
  void exactNamesMatchThemselvesOnlyWhateverTheCaseAndTrailingDot() {
    assertThat(DnsNames.matches("api.payments.example", "API.Payments.example.")).isTrue();
    assertThat(DnsNames.matches("api.payments.example", "x.api.payments.example")).isFalse();
    assertThat(DnsNames.matches("api.payments.example", "payments.example")).isFalse();
  }

  @Test
  void wildcardsMatchNamesStrictlyBelowWholeLabelsOnly() {
    assertThat(DnsNames.matches("*.payments.example", "a.payments.example.")).isTrue();
    assertThat(DnsNames.matches("*.payments.example", "a.b.payments.example")).isTrue();
    assertThat(DnsNames.matches("*.payments.example", "payments.example")).isFalse();
    assertThat(DnsNames.matches("*.payments.example", "evilpayments.example")).isFalse();
    assertThat(DnsNames.matches("*.payments.example", ".payments.example")).isFalse();
    assertThat(DnsNames.matching(List.of("*.payments.example", "api.payments.example", "other.example"),
        "api.payments.example")).containsExactly("*.payments.example", "api.payments.example");
  }

  static Message answer(String asked, Record... records) throws Exception {
    Message m = new Message();
    m.getHeader().setFlag(Flags.QR);
    m.addRecord(Record.newRecord(Name.fromString(asked + "."), Type.A, DClass.IN), Section.QUESTION);
    for (Record r : records) {
      m.addRecord(r, Section.ANSWER);
    }
    return new Message(m.toWire()); // through the wire form, as the proxy reads it
  }

  static ARecord a(String name, String ip, long ttl) throws Exception {
    return new ARecord(Name.fromString(name + "."), DClass.IN, ttl, java.net.InetAddress.getByName(ip));
  }

  static CNAMERecord cname(String name, String target, long ttl) throws Exception {
    return new CNAMERecord(Name.fromString(name + "."), DClass.IN, ttl, Name.fromString(target + "."));
  }

  @Test
  void anAnswerFillsEveryEntryTheAskedNameMatchesWithItsAddresses() throws Exception {
    var allowed = AnswerPairs.of(answer("api.payments.example", a("api.payments.example", "203.0.113.20", 3),
        a("api.payments.example", "203.0.113.21", 4)), List.of("api.payments.example", "*.payments.example", "x.example"));
    assertThat(allowed).containsExactly(
        new AnswerPairs.Allowed("api.payments.example", "203.0.113.20", 3),
        new AnswerPairs.Allowed("*.payments.example", "203.0.113.20", 3),
        new AnswerPairs.Allowed("api.payments.example", "203.0.113.21", 4),
        new AnswerPairs.Allowed("*.payments.example", "203.0.113.21", 4));
    assertThat(AnswerPairs.of(answer("other.example", a("other.example", "203.0.113.22", 3)),
        List.of("api.payments.example"))).isEmpty();
  }

  @Test
  void cnameChainsCountForTheAskedNameAndStrayRecordsDoNot() throws Exception {
    var msg = answer("api.payments.example",
        cname("api.payments.example", "edge.cdn.example", 60),
        cname("edge.cdn.example", "pop1.cdn.example", 60),
        a("pop1.cdn.example", "203.0.113.30", 2),
        a("unrelated.example", "203.0.113.99", 2)); // not on the chain: a poisoning attempt gets nothing
    assertThat(AnswerPairs.of(msg, List.of("api.payments.example")))
        .containsExactly(new AnswerPairs.Allowed("api.payments.example", "203.0.113.30", 2));
    // The chain's target names do not count on their own: the pod asked for api.payments.example.
    assertThat(AnswerPairs.of(msg, List.of("*.cdn.example"))).isEmpty();
  }

  @Test
  void aCnameLoopEndsWithoutAddresses() throws Exception {
    var msg = answer("a.example", cname("a.example", "b.example", 5), cname("b.example", "a.example", 5));
    assertThat(AnswerPairs.of(msg, List.of("a.example"))).isEmpty();
  }

  @Test
  void pairsExpireAfterTheTtlPlusTheGraceNeverZeroWhichIpsetReadsAsForever() {
    assertThat(AnswerPairs.timeoutSeconds(3, Duration.ofSeconds(5))).isEqualTo(8);
    assertThat(AnswerPairs.timeoutSeconds(3, Duration.ofMillis(1500))).isEqualTo(5);
    assertThat(AnswerPairs.timeoutSeconds(0, Duration.ZERO)).isEqualTo(1);
    assertThat(AnswerPairs.timeoutSeconds(-1, Duration.ZERO)).isEqualTo(1);
    assertThat(AnswerPairs.timeoutSeconds(Integer.MAX_VALUE, Duration.ofSeconds(5))).isEqualTo(AnswerPairs.MAX_TIMEOUT_S);
  }
}
