import type { Duplex } from 'node:stream';
import type { Broadcasting, SharedCounting, WindowCount } from '../../core/cluster.ts';
import { HeraldError } from '../../core/errors.ts';
import type { EventDraft, HeraldEvent } from '../../core/event.ts';
import type {
  BackwardReading,
  Broker,
  HistoryStats,
  LatestEvents,
  LatestKeeping,
  Location,
  LogHealth,
} from '../../core/log.ts';
import { BusListeners } from '../bus-listeners.ts';
import { toEvent } from '../codec.ts';
import { counterKey, counterLimit, counterNode, liveNodes, windowArguments } from '../counter-input.ts';
import { compareMemoryPositions, type MemoryBroker } from '../memory/broker.ts';

/**
 * The memory log shared by the worker processes of `herald serve --workers N`: the primary holds
 * the one `MemoryBroker` (`LogServer`), each worker reaches it through an `IpcBroker`, so ids,
 * history, replay and gaps are exactly those of a single process.
 *
 * It lives with the backends, not in src/server/, because it is one: a `Log` over the memory log,
 * held to the same contract test, sharing its position order. It is not in the registry: no URL
 * names it; `herald serve --workers` sets it up (src/server/workers.ts, worker.ts).
 *
 * The wire is newline-delimited JSON over a dedicated pipe rather than `process.send`, so that a
 * feed batch is serialized once and the same bytes are written to every worker (process.send would
 * serialize the message again for each one). `JSON.stringify` never emits a raw newline, which
 * makes the newline a safe frame delimiter.
 *
 * Worker → primary: `{"n":<request>,"o":<operation>,"a":<argument>}`.
 * Primary → worker: `{"n":<request>,"v":<value>}`, `{"n":<request>,"e":{"s","c","d"}}` (an error),
 * `{"f":[events]}`: everything appended by any worker since the last batch, in log order, or
 * `{"b":<message>}`: a message on the cluster bus (core/cluster.ts).
 *
 * The cluster: a worker's `broadcast` goes to the primary, which hands it to its memory log's bus;
 * the primary relays everything on that bus (its own broadcasts too) to every worker, the sender
 * included, serialized once. The shared counters are the memory log's, in the primary.
 */

type Operation =
  | 'start'
  | 'append'
  | 'locate'
  | 'read'
  | 'readBack'
  | 'latest'
  | 'history'
  | 'health'
  | 'broadcast'
  | 'acquire'
  | 'release'
  | 'consume';

interface Request {
  readonly n: number;
  readonly o: Operation;
  readonly a?: unknown;
}

interface Reply {
  readonly n?: number;
  readonly v?: unknown;
  readonly e?: { readonly s: number; readonly c: string; readonly d: string };
  readonly f?: readonly WireEvent[];
  readonly b?: string;
}

/** An event as JSON carries it: `frame` and `variants` are per-process caches, never sent. */
type WireEvent = Omit<HeraldEvent, 'frame' | 'variants'>;

/** Feed bytes a worker may leave unread before the primary gives up on it. */
const MAX_WORKER_BACKLOG_BYTES = 64 * 1024 * 1024;

/** Calls `onLine` with each complete line arriving on `stream`. */
function readLines(stream: Duplex, onLine: (line: string) => void): void {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    let start = 0;
    let end = chunk.indexOf('\n');
    if (end === -1) {
      partial += chunk;
      return;
    }
    // The first line may have begun in an earlier chunk; the others lie wholly in this one.
    onLine(partial + chunk.slice(0, end));
    partial = '';
    start = end + 1;
    for (end = chunk.indexOf('\n', start); end !== -1; end = chunk.indexOf('\n', start)) {
      onLine(chunk.slice(start, end));
      start = end + 1;
    }
    partial = chunk.slice(start);
  });
}

/** Writes a frame to a worker's pipe, unless the worker stopped reading. */
function send(stream: Duplex, bytes: Buffer): void {
  if (!stream.writable) return;
  // A worker that stopped reading would otherwise grow the primary without bound: cut it off,
  // so it exits, is restarted, and its clients resume from the log.
  if (stream.writableLength > MAX_WORKER_BACKLOG_BYTES) stream.destroy();
  else stream.write(bytes);
}

/** Back to the one object shape every broker gives the hub. */
function revive(event: WireEvent): HeraldEvent {
  return toEvent(event as EventDraft, event.pos);
}

/** The primary's side: serves one `MemoryBroker` to any number of worker pipes. */
export class LogServer {
  private readonly broker: MemoryBroker;
  /** Workers whose feed has started. */
  private readonly fed = new Set<Duplex>();
  /** Every worker's pipe, for the bus: a worker may listen before its feed starts. */
  private readonly attached = new Set<Duplex>();
  private pending: HeraldEvent[] = [];
  private flushScheduled = false;
  private readonly started: Promise<string>;
  /** The last event sent to the workers: where a new worker's feed begins. */
  private head: string | undefined;

  constructor(broker: MemoryBroker) {
    this.broker = broker;
    this.started = broker.start((events) => {
      for (const event of events) this.pending.push(event);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // Appends from every worker within one turn of the event loop leave as one batch.
        setImmediate(this.flush);
      }
    });
    broker.listen((message) => {
      // Serialized once; the same bytes go to every worker.
      const bytes = Buffer.from(`{"b":${JSON.stringify(message)}}\n`);
      for (const stream of this.attached) send(stream, bytes);
    });
  }

  /** Serves a worker's pipe until it closes. */
  attach(stream: Duplex): void {
    this.attached.add(stream);
    const detach = () => {
      this.fed.delete(stream);
      this.attached.delete(stream);
    };
    stream.on('close', detach);
    stream.on('end', () => {
      detach();
      stream.end();
    });
    // A worker that died mid-write leaves EPIPE behind; its restart gets a new pipe.
    stream.on('error', detach);
    readLines(stream, (line) => {
      let request: Request;
      try {
        request = JSON.parse(line) as Request;
      } catch {
        return;
      }
      this.handle(stream, request).catch(() => {});
    });
  }

  private async handle(stream: Duplex, { n, o, a }: Request): Promise<void> {
    let reply: Reply;
    try {
      reply = { n, v: await this.perform(stream, o, a) };
    } catch (error) {
      reply =
        error instanceof HeraldError
          ? { n, e: { s: error.status, c: error.code, d: error.detail } }
          : { n, e: { s: 503, c: 'broker-unavailable', d: (error as Error).message } };
    }
    if (stream.writable) stream.write(`${JSON.stringify(reply)}\n`);
  }

  private async perform(stream: Duplex, operation: Operation, argument: unknown): Promise<unknown> {
    const broker = this.broker;
    switch (operation) {
      case 'start': {
        const initial = await this.started;
        // What is already batched precedes the head given to this worker: it must not get it too.
        this.flush();
        this.fed.add(stream);
        // The worker learns the bound here, so that `latestKeeperOf` answers without a round trip.
        return [this.head ?? initial, broker.latestMaxKeys];
      }
      case 'append': {
        // Only positions go back: the worker already holds the drafts.
        const events = await broker.append(argument as EventDraft[]);
        return events.map((event) => event.pos);
      }
      case 'locate': {
        const [id, tenant] = argument as [string, string];
        return broker.locate(id, tenant);
      }
      case 'read': {
        const [after, until, limit] = argument as [string | null, string, number];
        return broker.read(after, until, limit);
      }
      case 'readBack': {
        const [until, limit, exclusive] = argument as [string, number, boolean];
        return broker.readBack(until, limit, exclusive);
      }
      case 'latest': {
        const [tenant, limit] = argument as [string, number];
        return broker.latest(tenant, limit);
      }
      case 'history':
        return broker.history();
      case 'health':
        return broker.health();
      case 'broadcast':
        // Reaches the workers through the bus's listener set up in the constructor.
        return broker.broadcast(argument as string);
      case 'acquire': {
        const [key, node, limit, live] = argument as [string, string, number, string[]];
        return broker.acquire(key, node, limit, live);
      }
      case 'release': {
        const [key, node] = argument as [string, string];
        return broker.release(key, node);
      }
      case 'consume': {
        const [key, amount, windowMs] = argument as [string, number, number];
        return broker.consume(key, amount, windowMs);
      }
      default:
        throw new HeraldError(400, 'bad-request', `unknown log operation ${String(operation)}`);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    const events = this.pending;
    if (events.length === 0) return;
    this.pending = [];
    const last = events[events.length - 1] as HeraldEvent;
    this.head = last.pos;
    // Serialized once; the same bytes go to every worker.
    const bytes = Buffer.from(`{"f":${JSON.stringify(events)}}\n`);
    for (const stream of this.fed) send(stream, bytes);
  };

  close(): Promise<void> {
    this.flush();
    return this.broker.close();
  }
}

/**
 * A worker's side: the `Broker` the worker's hub uses, answered by the primary's `LogServer`.
 * Positions are the memory broker's, so comparing them needs no round trip.
 */
export class IpcBroker implements Broker, BackwardReading, LatestKeeping, Broadcasting, SharedCounting {
  readonly kind = 'memory';
  /** The primary's bound, told when the feed starts; 0 until then. */
  latestMaxKeys = 0;
  private readonly stream: Duplex;
  private readonly calls = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void }
  >();
  private nextCall = 1;
  private feed: ((events: readonly HeraldEvent[]) => void) | undefined;
  private gone: string | undefined;
  /** Fed by the primary's `b` frames, which come whether or not this worker listens. */
  private readonly bus = new BusListeners();

  constructor(stream: Duplex) {
    this.stream = stream;
    readLines(stream, (line) => this.receive(JSON.parse(line) as Reply));
    const lost = () => this.fail('the primary process that holds the log is gone; this worker is stopping');
    stream.on('close', lost);
    stream.on('error', lost);
  }

  async start(feed: (events: readonly HeraldEvent[]) => void): Promise<string> {
    // Set before asking: the pipe is ordered, so no batch can arrive ahead of the answer.
    this.feed = feed;
    const [head, latestMaxKeys] = (await this.call('start')) as [string, number];
    this.latestMaxKeys = latestMaxKeys;
    return head;
  }

  async append(drafts: readonly EventDraft[]): Promise<HeraldEvent[]> {
    const positions = (await this.call('append', drafts)) as string[];
    return drafts.map((draft, i) => toEvent(draft, positions[i] as string));
  }

  locate(id: string, tenant: string): Promise<Location> {
    return this.call('locate', [id, tenant]) as Promise<Location>;
  }

  async read(after: string | null, until: string, limit: number): Promise<HeraldEvent[]> {
    const events = (await this.call('read', [after, until, limit])) as WireEvent[];
    return events.map(revive);
  }

  async readBack(until: string, limit: number, exclusive: boolean): Promise<HeraldEvent[]> {
    const events = (await this.call('readBack', [until, limit, exclusive])) as WireEvent[];
    return events.map(revive);
  }

  async latest(tenant: string, limit: number): Promise<LatestEvents> {
    const { events, complete } = (await this.call('latest', [tenant, limit])) as {
      events: WireEvent[];
      complete: boolean;
    };
    return { events: events.map(revive), complete };
  }

  compare(a: string, b: string): number {
    return compareMemoryPositions(a, b);
  }

  history(): Promise<HistoryStats> {
    return this.call('history') as Promise<HistoryStats>;
  }

  async health(): Promise<LogHealth> {
    if (this.gone !== undefined) return { ok: false, detail: this.gone };
    return (await this.call('health')) as LogHealth;
  }

  /** Through the primary, to every worker (this one included) and the primary's own listeners. */
  async broadcast(message: string): Promise<void> {
    if (typeof message !== 'string') throw new TypeError('a cluster bus message must be a string');
    await this.call('broadcast', message);
  }

  listen(listener: (message: string) => void): () => void {
    return this.bus.listen(listener);
  }

  // The counters are checked here too, so that a caller's mistake is its RangeError, not a 503.

  async acquire(key: string, node: string, limit: number, live: readonly string[]): Promise<boolean> {
    counterKey(key);
    counterNode(node);
    counterLimit(limit);
    return (await this.call('acquire', [key, node, limit, [...liveNodes(live, node)]])) as boolean;
  }

  async release(key: string, node: string): Promise<void> {
    counterKey(key);
    counterNode(node);
    await this.call('release', [key, node]);
  }

  async consume(key: string, amount: number, windowMs: number): Promise<WindowCount> {
    counterKey(key);
    windowArguments(amount, windowMs);
    return (await this.call('consume', [key, amount, windowMs])) as WindowCount;
  }

  async close(): Promise<void> {
    this.feed = undefined;
    this.bus.close();
    this.fail('the hub is shutting down; retry shortly');
    this.stream.end();
  }

  private call(operation: Operation, argument?: unknown): Promise<unknown> {
    if (this.gone !== undefined) {
      return Promise.reject(new HeraldError(503, 'broker-unavailable', this.gone));
    }
    const n = this.nextCall++;
    const request: Request = argument === undefined ? { n, o: operation } : { n, o: operation, a: argument };
    return new Promise((resolve, reject) => {
      this.calls.set(n, { resolve, reject });
      this.stream.write(`${JSON.stringify(request)}\n`);
    });
  }

  private receive(reply: Reply): void {
    if (reply.f !== undefined) {
      this.feed?.(reply.f.map(revive));
      return;
    }
    if (reply.b !== undefined) {
      this.bus.deliver(reply.b);
      return;
    }
    const call = this.calls.get(reply.n as number);
    if (call === undefined) return;
    this.calls.delete(reply.n as number);
    if (reply.e === undefined) call.resolve(reply.v);
    else call.reject(new HeraldError(reply.e.s, reply.e.c, reply.e.d));
  }

  private fail(reason: string): void {
    this.gone ??= reason;
    for (const call of this.calls.values()) {
      call.reject(new HeraldError(503, 'broker-unavailable', this.gone));
    }
    this.calls.clear();
  }
}
