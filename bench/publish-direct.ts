import { encodePayload, nowMs, PAYLOAD_BYTES } from './payload.ts';
import { protocolNamed } from './protocols.ts';
import type { Endpoint, RunningTarget } from './targets.ts';

/**
 * Publishes benchmark events `firstSeq` to `lastSeq` to one topic from the orchestrator itself,
 * in order, as few requests as the protocol allows: for the scenarios that need a few events at
 * a given moment (S3's liveness check, S5's history), not a rate.
 */
export async function publishDirect(
  target: RunningTarget,
  topic: string,
  firstSeq: number,
  lastSeq: number,
  to: Endpoint = target.publishTo,
): Promise<void> {
  const protocol = protocolNamed(target.protocol);
  for (let seq = firstSeq; seq <= lastSeq; ) {
    const count = Math.min(protocol.maxBatch, lastSeq - seq + 1);
    const sentAt = nowMs();
    const payloads = Array.from({ length: count }, (_, i) => encodePayload(seq + i, sentAt, PAYLOAD_BYTES));
    const request = protocol.publish(topic, payloads);
    const response = await fetch(`http://${to.host}:${to.port}${request.path}`, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`publish answered HTTP ${response.status}: ${text.slice(0, 300)}`);
    seq += count;
  }
}
