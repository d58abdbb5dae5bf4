package io.natgate.connlog;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;

/**
 * One line of the connection log, schema {@value #SCHEMA} (docs/connection-log.md: a field is never renamed or
 * given another meaning within a schema version; new fields may be added). Null fields are left out. The log writes
 * it with {@link #json}, the annotations' order and rules by hand (Jackson's serializer cost more per record than
 * the rest of the writer; ConnectionRecordTest holds the two to the same bytes).
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
@JsonPropertyOrder({"schema", "event", "time", "node", "gateway", "egressIP", "podNamespace", "podName", "protocol",
    "srcIP", "srcPort", "translatedPort", "dstIP", "dstPort", "conntrackId", "startTime", "durationMillis",
    "packetsOut", "bytesOut", "packetsIn", "bytesIn", "tcpState", "endReason", "name"})
public record ConnectionRecord(String schema, String event, String time, String node, String gateway,
    String egressIP, String podNamespace, String podName, String protocol, String srcIP, Integer srcPort,
    Integer translatedPort, String dstIP, Integer dstPort, Long conntrackId, String startTime, Long durationMillis,
    Long packetsOut, Long bytesOut, Long packetsIn, Long bytesIn, String tcpState, String endReason, String name) {
  public static final String SCHEMA = "natgate.io/connection-log/v1";
  private static final char[] HEX = "0123456789ABCDEF".toCharArray();

  /**
   * @param pod   namespace/name, or null when the source is no pod the node state names (deleted meanwhile)
   * @param start when this agent saw the connection start, or null (it started before the agent listened)
   */
  public static ConnectionRecord of(ConntrackEvent e, String node, String gateway, String pod, String start) {
    boolean end = e.type() == ConntrackEvent.Type.DESTROY;
    int slash = pod == null ? -1 : pod.indexOf('/');
    return new ConnectionRecord(SCHEMA, end ? "end" : "start", e.time().toString(), node, gateway, e.replyDstIP(),
        slash < 0 ? null : pod.substring(0, slash), slash < 0 ? null : pod.substring(slash + 1), e.protocol(),
        e.srcIP(), e.srcPort(), e.replyDstPort(), e.dstIP(), e.dstPort(), e.id(), end ? start : null,
        end ? e.durationMillis() : null, e.packetsOut(), e.bytesOut(), e.packetsIn(), e.bytesIn(),
        end ? e.tcpState() : null, end ? e.endReason() : null, null);
  }

  /**
   * A connection the allow list refused: no translated port, no conntrack id (it never became a connection).
   *
   * @param name the allow list's DNS name the destination was answered for, when known (the DNS path's to tell)
   */
  public static ConnectionRecord denied(DeniedPacket p, String node, String gateway, String pod, String name) {
    int slash = pod == null ? -1 : pod.indexOf('/');
    return new ConnectionRecord(SCHEMA, "denied", p.time().toString(), node, gateway, p.egressIP(),
        slash < 0 ? null : pod.substring(0, slash), slash < 0 ? null : pod.substring(slash + 1), p.protocol(),
        p.srcIP(), p.srcPort(), null, p.dstIP(), p.dstPort(), null, null, null, null, null, null, null, null, null,
        name);
  }

  /** This record as one JSON object (no line end), as Jackson writes it with the annotations above. */
  public String json() {
    return json(new StringBuilder(512)).toString();
  }

  /** Appends {@link #json()} to {@code b}. */
  public StringBuilder json(StringBuilder b) {
    int start = b.length();
    b.append('{');
    text(b, "schema", schema);
    text(b, "event", event);
    text(b, "time", time);
    text(b, "node", node);
    text(b, "gateway", gateway);
    text(b, "egressIP", egressIP);
    text(b, "podNamespace", podNamespace);
    text(b, "podName", podName);
    text(b, "protocol", protocol);
    text(b, "srcIP", srcIP);
    number(b, "srcPort", srcPort);
    number(b, "translatedPort", translatedPort);
    text(b, "dstIP", dstIP);
    number(b, "dstPort", dstPort);
    number(b, "conntrackId", conntrackId);
    text(b, "startTime", startTime);
    number(b, "durationMillis", durationMillis);
    number(b, "packetsOut", packetsOut);
    number(b, "bytesOut", bytesOut);
    number(b, "packetsIn", packetsIn);
    number(b, "bytesIn", bytesIn);
    text(b, "tcpState", tcpState);
    text(b, "endReason", endReason);
    text(b, "name", name);
    b.append('}');
    if (b.charAt(start + 1) == ',') {
      b.deleteCharAt(start + 1); // the first field's
    }
    return b;
  }

  private static void name(StringBuilder b, String name) {
    b.append(',');
    b.append('"').append(name).append("\":");
  }

  private static void number(StringBuilder b, String name, Number value) {
    if (value != null) {
      name(b, name);
      b.append(value.longValue());
    }
  }

  /** A string value, escaped as JSON requires: quote, backslash and control characters (the rest as is, UTF-8). */
  private static void text(StringBuilder b, String name, String value) {
    if (value == null) {
      return;
    }
    name(b, name);
    b.append('"');
    for (int i = 0; i < value.length(); i++) {
      char c = value.charAt(i);
      switch (c) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        case '\n' -> b.append("\\n");
        case '\r' -> b.append("\\r");
        case '\t' -> b.append("\\t");
        case '\b' -> b.append("\\b");
        case '\f' -> b.append("\\f");
        default -> {
          if (c < 0x20) {
            b.append("\\u00").append(HEX[c >> 4]).append(HEX[c & 0xf]);
          } else {
            b.append(c);
          }
        }
      }
    }
    b.append('"');
  }
}
