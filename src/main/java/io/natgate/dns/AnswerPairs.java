package io.natgate.dns;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.xbill.DNS.ARecord;
import org.xbill.DNS.CNAMERecord;
import org.xbill.DNS.Message;
import org.xbill.DNS.Record;
import org.xbill.DNS.Section;
import org.xbill.DNS.Type;

/** Which allow-list entries an answer fills, with which addresses and for how long. Pure. */
public final class AnswerPairs {
  /** ipset's largest timeout (seconds); an answer's TTL may be anything up to 2^31-1. */
  static final long MAX_TIMEOUT_S = 2_147_483;
  /** CNAME chains longer than this are not followed (resolvers stop far earlier; a loop must not spin). */
  static final int MAX_CHAIN = 16;

  private AnswerPairs() {
  }

  /**
   * One address to allow: for the allow-list entry {@code fqdn} (whose set it goes into), answered with TTL
   * {@code ttlSeconds}.
   */
  public record Allowed(String fqdn, String address, long ttlSeconds) {
  }

  /**
   * The addresses the answer gives for the name the pod asked, once per entry of {@code fqdns} that name matches:
   * the A records at the end of its CNAME chain count for the asked name (the pod connects to them as that name),
   * whatever names the chain passes through. Records for other names are ignored.
   */
  public static List<Allowed> of(Message answer, List<String> fqdns) {
    Record question = answer.getQuestion();
    if (question == null || question.getType() != Type.A) {
      return List.of(); // AAAA and the rest: the gateway is IPv4 only
    }
    String asked = DnsNames.normalize(question.getName().toString());
    List<String> entries = DnsNames.matching(fqdns, asked);
    if (entries.isEmpty()) {
      return List.of();
    }
    Map<String, String> cnames = new HashMap<>();
    List<ARecord> addresses = new ArrayList<>();
    for (Record r : answer.getSection(Section.ANSWER)) {
      if (r instanceof CNAMERecord c) {
        cnames.put(DnsNames.normalize(c.getName().toString()), DnsNames.normalize(c.getTarget().toString()));
      } else if (r instanceof ARecord a) {
        addresses.add(a);
      }
    }
    String end = asked;
    for (int i = 0; i < MAX_CHAIN && cnames.containsKey(end); i++) {
      end = cnames.get(end);
    }
    List<Allowed> allowed = new ArrayList<>();
    for (ARecord a : addresses) {
      if (DnsNames.normalize(a.getName().toString()).equals(end)) {
        entries.forEach(f -> allowed.add(new Allowed(f, a.getAddress().getHostAddress(), a.getTTL())));
      }
    }
    return allowed;
  }

  /** How long a pair stays in the gateway's set: the TTL plus the grace, whole seconds, at least 1 (0 is forever). */
  public static long timeoutSeconds(long ttlSeconds, Duration grace) {
    long graceS = (grace.toMillis() + 999) / 1000;
    return Math.max(1, Math.min(MAX_TIMEOUT_S, Math.max(0, ttlSeconds) + graceS));
  }
}
