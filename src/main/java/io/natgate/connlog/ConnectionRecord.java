package io.natgate.connlog;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;

/**
 * One line of the connection log, schema {@value #SCHEMA} (docs/connection-log.md: a field is never renamed or
 * given another meaning within a schema version; new fields may be added). Null fields are left out.
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
}
