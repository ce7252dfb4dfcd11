/**
 * Load generator: publishes benchmark events over HTTP, either at a fixed rate or, saturated, as
 * fast as the subscribers take them. Forked by the orchestrator; speaks `messages.ts` over IPC.
 *
 * One keep-alive connection, one request at a time: the server appends events in the order they
 * were numbered, so a subscriber can tell a lost event from a late one by its seq alone.
 */
import http from 'node:http';
import type { PhaseDone, PublisherIn, PublisherOut, PublishPhase } from './messages.ts';
import { encodePayload, nowMs } from './payload.ts';
import { type PublishRequest, protocolNamed, type TopicEvent, type WireProtocol } from './protocols.ts';

const REQUEST_TIMEOUT_MS = 10_000;
/** Saturated mode re-checks the window at least this often, even without news. */
const WAIT_SLICE_MS = 50;

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
/** Single-event requests to many topics go out on several connections at once. */
let parallelAgent: http.Agent | undefined;
/** Requests in flight at once when events are spread over topics and each is its own request. */
const DEFAULT_PARALLEL = 16;
let delivered = 0;
let wake: (() => void) | undefined;

function send(message: PublisherOut): void {
  if (process.connected) process.send?.(message);
}

function cpuUsed(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return used.user + used.system;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Until the orchestrator reports new deliveries, or `ms` passes. */
function deliveries(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      wake = undefined;
      resolve();
    }
    wake = done;
  });
}

/** The requests that publish events `firstSeq` to `firstSeq + count - 1`. */
function requestsFor(
  phase: PublishPhase,
  protocol: WireProtocol,
  firstSeq: number,
  count: number,
): PublishRequest[] {
  const sentAt = nowMs();
  const topics = phase.topics;
  if (topics === undefined) {
    const payloads: string[] = new Array(count);
    for (let i = 0; i < count; i++) payloads[i] = encodePayload(firstSeq + i, sentAt, phase.payloadBytes);
    // One topic, one event per request (`single`, without lanes): one at a time, so still in order.
    if (phase.single === true) return payloads.map((payload) => protocol.publish(phase.topic, [payload]));
    return [protocol.publish(phase.topic, payloads)];
  }
  const n = topics.length;
  const events: TopicEvent[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const g = firstSeq + i - 1;
    events[i] = {
      topic: topics[g % n] as string,
      data: encodePayload(Math.floor(g / n) + 1, sentAt, phase.payloadBytes),
    };
  }
  if (protocol.publishEach !== undefined && phase.single !== true) return [protocol.publishEach(events)];
  // Events of one topic are n apart, so requests in flight together never share a topic.
  return events.map((event) => protocol.publish(event.topic, [event.data]));
}

async function post(
  phase: PublishPhase,
  protocol: WireProtocol,
  firstSeq: number,
  count: number,
): Promise<void> {
  const requests = requestsFor(phase, protocol, firstSeq, count);
  const only = requests[0];
  if (requests.length === 1 && only !== undefined) return send1(phase, only, agent);
  parallelAgent ??= new http.Agent({ keepAlive: true, maxSockets: phase.parallel ?? DEFAULT_PARALLEL });
  const via = parallelAgent;
  await Promise.all(requests.map((request) => send1(phase, request, via)));
}

function send1(phase: PublishPhase, request: PublishRequest, agent: http.Agent): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: phase.host,
        port: phase.port,
        method: request.method,
        path: request.path,
        headers: { ...request.headers, 'content-length': Buffer.byteLength(request.body) },
        agent,
        timeout: REQUEST_TIMEOUT_MS,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (text: string) => {
          if (body.length < 2_000) body += text;
        });
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve();
          else reject(new Error(`publish answered HTTP ${status}: ${body.slice(0, 300)}`));
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error(`publish got no answer within ${REQUEST_TIMEOUT_MS / 1000} s`)),
    );
    req.on('error', reject);
    req.end(request.body);
  });
}

async function run(phase: PublishPhase): Promise<PhaseDone> {
  const protocol = protocolNamed(phase.protocol);
  if (phase.lanes !== undefined && phase.lanes > 1) return runLanes(phase, protocol, phase.lanes);
  // Spread over topics without a request for several, a "batch" is that many requests at once.
  const maxBatch =
    phase.topics !== undefined && (protocol.publishEach === undefined || phase.single === true)
      ? (phase.parallel ?? DEFAULT_PARALLEL)
      : phase.single === true
        ? 1
        : Math.max(1, Math.min(phase.batch, protocol.maxBatch));
  const lastAllowed = phase.firstSeq + phase.maxEvents - 1;
  const cpuAtStart = process.cpuUsage();
  const start = performance.now();
  const deadline = start + phase.durationMs;
  let next = phase.firstSeq;
  let requests = 0;
  let maxLagMs = 0;
  let error: string | undefined;
  while (next <= lastAllowed) {
    const now = performance.now();
    if (now >= deadline) break;
    let count: number;
    if (phase.rate > 0) {
      // Events due by now, on an even schedule from the start of the phase.
      // The first is due at the start: a phase of d seconds publishes d × rate events, not one fewer.
      const due = phase.firstSeq + Math.floor(((now - start) * phase.rate) / 1000) + 1 - next;
      if (due <= 0) {
        const nextDueAt = start + ((next - phase.firstSeq) * 1000) / phase.rate;
        await sleep(Math.max(1, Math.min(nextDueAt, deadline) - now));
        continue;
      }
      // The oldest due event was scheduled at this time: the lag shows a publisher falling behind.
      const scheduledAt = start + ((next - phase.firstSeq) * 1000) / phase.rate;
      maxLagMs = Math.max(maxLagMs, now - scheduledAt);
      count = Math.min(due, maxBatch);
    } else {
      const room = delivered + phase.window - next + 1;
      if (room < Math.min(maxBatch, phase.window)) {
        await deliveries(Math.min(WAIT_SLICE_MS, Math.max(1, deadline - now)));
        continue;
      }
      count = Math.min(room, maxBatch);
    }
    count = Math.min(count, lastAllowed - next + 1);
    try {
      await post(phase, protocol, next, count);
    } catch (cause) {
      error = cause instanceof Error ? cause.message : String(cause);
      break;
    }
    requests++;
    next += count;
  }
  const done: PhaseDone = {
    type: 'done',
    firstSeq: phase.firstSeq,
    lastSeq: next - 1,
    requests,
    elapsedMs: performance.now() - start,
    maxLagMs,
    cpuMicros: cpuUsed(cpuAtStart),
  };
  return error === undefined ? done : { ...done, error };
}

/** Connections of the lanes, one each. */
let laneAgent: http.Agent | undefined;

/**
 * `lanes` publishers on one topic, one event per request: event g goes out on lane
 * `(g - 1) % lanes` once that lane's previous request was answered (so each lane stays in order)
 * and once it is due (fixed rate) or within the window (saturated). Events are handed out in
 * order and every request is awaited before the phase ends, so what was published is always
 * `firstSeq` to `lastSeq`, without holes.
 */
async function runLanes(phase: PublishPhase, protocol: WireProtocol, lanes: number): Promise<PhaseDone> {
  laneAgent ??= new http.Agent({ keepAlive: true, maxSockets: lanes });
  const via = laneAgent;
  const busy: (Promise<void> | undefined)[] = new Array(lanes).fill(undefined);
  const lastAllowed = phase.firstSeq + phase.maxEvents - 1;
  const cpuAtStart = process.cpuUsage();
  const start = performance.now();
  const deadline = start + phase.durationMs;
  let next = phase.firstSeq;
  let requests = 0;
  let maxLagMs = 0;
  let error: string | undefined;
  while (next <= lastAllowed && error === undefined) {
    const now = performance.now();
    if (now >= deadline) break;
    if (phase.rate > 0) {
      const scheduledAt = start + ((next - phase.firstSeq) * 1000) / phase.rate;
      if (scheduledAt > now) {
        await sleep(Math.max(1, Math.min(scheduledAt, deadline) - now));
        continue;
      }
      maxLagMs = Math.max(maxLagMs, now - scheduledAt);
    } else if (delivered + phase.window - next + 1 < 1) {
      await deliveries(Math.min(WAIT_SLICE_MS, Math.max(1, deadline - now)));
      continue;
    }
    const lane = (next - 1) % lanes;
    const previous = busy[lane];
    if (previous !== undefined) {
      await previous;
      busy[lane] = undefined;
      // The time spent waiting may have run past the deadline or the window: look again.
      continue;
    }
    const request = protocol.publish(phase.topic, [encodePayload(next, nowMs(), phase.payloadBytes)]);
    busy[lane] = send1(phase, request, via).then(
      () => {
        requests++;
      },
      (cause: unknown) => {
        error ??= cause instanceof Error ? cause.message : String(cause);
      },
    );
    next++;
  }
  await Promise.all(busy);
  const done: PhaseDone = {
    type: 'done',
    firstSeq: phase.firstSeq,
    lastSeq: next - 1,
    requests,
    elapsedMs: performance.now() - start,
    maxLagMs,
    cpuMicros: cpuUsed(cpuAtStart),
  };
  return error === undefined ? done : { ...done, error };
}

process.on('message', (message: PublisherIn) => {
  switch (message.type) {
    case 'run':
      run(message).then(send);
      break;
    case 'delivered':
      delivered = message.minSeq;
      wake?.();
      break;
    case 'quit':
      agent.destroy();
      parallelAgent?.destroy();
      laneAgent?.destroy();
      process.exit(0);
  }
});

process.on('disconnect', () => process.exit(0));
