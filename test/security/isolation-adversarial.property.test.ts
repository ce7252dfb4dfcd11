import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BACKENDS, type Backend, hubOn } from '../helpers/backends.ts';
import { type Rng, random } from '../helpers/random.ts';
import type { TestHub } from '../helpers/server.ts';
import { openStream, type SseStream } from '../helpers/sse-client.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';
import { mercurePublish, mercureStream } from '../mercure/mercure-client.ts';

/**
 * Nothing one tenant does is observable by another, tried as an attacker would (issue 12).
 *
 * A differential test. A victim tenant V plays a seeded scenario on a fresh hub (publishes with
 * and without chosen ids, native and Mercure; streams that disconnect and resume with
 * Last-Event-ID, `lastEventId`, Mercure's header or `lastEventID`; long polls with `after=`;
 * changes to its own streams) and writes down all it observes, with the ids that differ from
 * one hub to the next (positions, Mercure's `urn:uuid:` ids, connection ids) replaced by what
 * they name. The same scenario is played again on another fresh hub while an attacker tenant A
 * interleaves random adversarial actions, with everything it could learn about V (V's chosen
 * ids, its auto ids, its connection ids). V's two notebooks must be identical.
 *
 * And A must not be able to tell V's ids from ids nobody used: each probe with one of V's ids is
 * played twice, once with V's id on topics named like V's, once with a fresh id of the same
 * shape on a mirror copy of those topics, and the two answers must be equal (status, problem
 * detail, `herald.gap` reason, Mercure's `Last-Event-ID` header, poll body, events received).
 * Every attacker publish is likewise made on both sides, so the two sides' histories stay
 * alike. A probe with one of V's auto ids (a position in the shared log, which by design answers
 * the same whoever asks) is checked against an oracle instead: exactly A's own events after
 * that point, no gap.
 *
 * Every step waits for what it did to be dispatched (a watcher stream per tenant sees each
 * publish; a sync event on every stream before one is closed), so what a run observes depends
 * only on the seed, never on timing.
 */

const CASES = [
  { seed: 1, victim: 'acme', attacker: 'globex' },
  { seed: 2, victim: '', attacker: 'acme' },
  { seed: 3, victim: 'globex', attacker: '' },
] as const;
type Case = (typeof CASES)[number];

const VICTIM_STEPS = 45;
/** Generous: the machine is busy, and a wait that ends early costs nothing. */
const WAIT_MS = 15_000;
const OPTIONS = {
  auth: { jwt: { secrets: [SECRET] }, anonymous: true },
  // Every request of the test comes from 127.0.0.1: a per-IP rate shared by both tenants would
  // be an effect of the test harness, not of anything a tenant can do to another.
  limits: { connectionsPerSecondPerIp: 0 },
};

const SYNC = 'sync';
const TOPICS = ['rooms/1', 'rooms/2', 'news', 'https://example.com/books/1'];
const SELECTORS = [...TOPICS, 'rooms/{id}', '*'];
/** What the attacker selects: V's topic names, but never `*`, which would see both of its sides. */
const SIDE_SELECTORS = [...TOPICS, 'rooms/{id}'];
/** The shape of a log position on every broker (memory `<epoch ms>-<seq>`, Redis `<ms>-<seq>`, NATS `<seq>`). */
const POSITION = /^\d+(-\d+)?$/;

const HEX = '0123456789abcdef';
const hex = (rng: Rng, n: number) => Array.from({ length: n }, () => HEX[rng.int(16)]).join('');
const uuid = (rng: Rng) =>
  `${hex(rng, 8)}-${hex(rng, 4)}-4${hex(rng, 3)}-${'89ab'[rng.int(4)]}${hex(rng, 3)}-${hex(rng, 12)}`;
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Shapes of ids: what V chooses, what the hub makes (Mercure's urn:uuid, connection ids). */
const SHAPES = {
  urn: (rng: Rng) => `urn:uuid:${uuid(rng)}`,
  order: (rng: Rng) => `order-${1 + rng.int(999_999)}`,
  revision: (rng: Rng) => `https://example.com/books/${rng.int(100)}#rev-${rng.int(10_000)}`,
  accented: (rng: Rng) => `évènement/${hex(rng, 8)}`,
  connection: uuid,
  secret: (rng: Rng) => Array.from({ length: 22 }, () => BASE64URL[rng.int(64)]).join(''),
} as const;
type Shape = keyof typeof SHAPES;
const CHOSEN_SHAPES: readonly Shape[] = ['urn', 'order', 'revision', 'accented'];

/** Another string of the same shape: each digit another digit, each letter another letter. */
function sameShape(text: string, rng: Rng): string {
  return text.replace(/[0-9a-zA-Z]/g, (c, at: number) => {
    if (/[0-9]/.test(c)) return String(at === 0 ? 1 + rng.int(9) : rng.int(10));
    const letter = String.fromCharCode(97 + rng.int(26));
    return /[A-Z]/.test(c) ? letter.toUpperCase() : letter;
  });
}

/** The selector oracle, written out independently of the hub's matcher (topics of one side). */
function selects(selector: string, topic: string): boolean {
  if (selector === '*') return true;
  if (selector === 'rooms/{id}') return /^rooms\/[^/]+$/.test(topic);
  return selector === topic;
}

/**
 * Turns what differs from one hub to another into what it names: an auto id becomes the data of
 * its event, a probe id the probe's number, a cursor (a position the client did not send)
 * `<cursor>`. Anything not named stays as it is, so an id that should never have been seen
 * shows up in a comparison.
 */
class Names {
  readonly #labels = new Map<string, string>();
  readonly #data: (data: string) => string;

  constructor(data: (data: string) => string = (text) => text) {
    this.#data = data;
  }

  set(id: string, label: string): void {
    this.#labels.set(id, label);
  }

  id(value: string | undefined | null): string | undefined {
    if (value === undefined || value === null) return undefined;
    return this.#labels.get(value) ?? (POSITION.test(value) ? `<unnamed position>` : value);
  }

  /**
   * A resume point the hub reports (herald.connected, an empty poll): the requested id, or where
   * the shared log was. Any position is `<cursor>`, even the one requested: how far the log has
   * gone counts every tenant's events, which is by design (positions are global points).
   */
  cursor(value: string, requested: string | undefined): string | undefined {
    if (POSITION.test(value)) return '<cursor>';
    return value === requested ? '<as requested>' : this.id(value);
  }

  /** Mercure's `Last-Event-ID` response header, whose bytes are UTF-8 (node:http reads them as latin1). */
  header(value: string | string[] | undefined): string | undefined {
    if (typeof value !== 'string') return undefined;
    return this.id(Buffer.from(value, 'latin1').toString('utf8'));
  }

  data(value: string): string {
    return this.#data(value);
  }

  /**
   * A problem's detail, with every named id in it replaced, in one pass (longest first: one may
   * contain another). A position (NATS's are small numbers) is replaced only where it is quoted,
   * so that the digits of some other number are not taken for it.
   */
  text(value: unknown): unknown {
    if (typeof value !== 'string' || this.#labels.size === 0) return value;
    const ids = [...this.#labels.keys()].sort((a, b) => b.length - a.length);
    const escaped = ids.map((id) => {
      const literal = id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      return POSITION.test(id) ? `(?<=")${literal}(?=")` : literal;
    });
    return value.replace(new RegExp(escaped.join('|'), 'g'), (id) => this.#labels.get(id) ?? id);
  }
}

interface Answer {
  readonly status: number;
  readonly body: unknown;
  readonly headers: Headers;
}

async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(url, init);
  const text = await response.text();
  const type = response.headers.get('content-type') ?? '';
  const body = type.includes('json') && text !== '' ? JSON.parse(text) : text;
  return { status: response.status, body, headers: response.headers };
}

const problem = (body: unknown, names: Names) => {
  const { code, detail } = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  return { code, detail: names.text(detail) };
};

/** A stream one tenant holds: what it asked for and how, what it received. */
interface Held {
  readonly label: string;
  readonly kind: 'native' | 'mercure';
  selectors: readonly string[];
  readonly headers: Record<string, string>;
  readonly requested: string | undefined;
  readonly stream: SseStream;
  closed: boolean;
  resumed: boolean;
}

/** What a stream received, with ids named; Herald's connection id and secret left out. */
function view(held: Held, names: Names) {
  return held.stream.events.map((event) => {
    if (event.type === 'herald.connected') {
      const { lastEventId } = JSON.parse(event.data) as { lastEventId: string };
      return { type: event.type, lastEventId: names.cursor(lastEventId, held.requested) };
    }
    if (event.type === 'herald.gap') {
      const { lastEventId, reason } = JSON.parse(event.data) as { lastEventId: string; reason: string };
      return { type: event.type, lastEventId: names.id(lastEventId), reason };
    }
    return { id: names.id(event.id), type: event.type, data: names.data(event.data) };
  });
}

/** The last id a stream saw: what EventSource would send back as Last-Event-ID. */
const lastIdOf = (stream: SseStream) => stream.events.findLast((e) => e.id !== undefined && e.id !== '')?.id;
const connectedOf = (stream: SseStream) => {
  const connected = stream.events.find((e) => e.type === 'herald.connected');
  return connected === undefined
    ? undefined
    : (JSON.parse(connected.data) as { connectionId: string; secret?: string });
};

/** One of the attacker's two sides: x uses V's ids on V's topic names, y fresh ids on `mirror/…`. */
interface Side {
  readonly tag: 'x' | 'y';
  readonly topic: (name: string) => string;
  readonly names: Names;
}

interface Logged {
  readonly who: 'victim' | 'attacker';
  readonly side?: 'x' | 'y';
  readonly topics: readonly string[];
  readonly data: string;
  readonly id: string;
}

interface Outcome {
  /** V's notebook: one entry per observation, tagged with the step it was made at. */
  readonly victim: { readonly step: number; readonly seen: unknown }[];
  /** Probes where V's id and a fresh id of the same shape were answered differently. */
  readonly distinguishable: string[];
  /** Attacker probes with V's auto ids that did not get exactly the attacker's own events. */
  readonly oracle: string[];
  /** Events a tenant received that another published. */
  readonly leaks: string[];
  /** What the attacker did, by step, to explain a divergence in V's notebook. */
  readonly trace: string[];
  /** How many probes were played with V's id and with a fresh one. */
  compared: number;
}

/** One play of the scenario on a fresh hub: V alone, or V with A interleaving its attacks. */
class Play {
  readonly hub: TestHub;
  readonly victim: string;
  readonly attacker: string;
  readonly attacked: boolean;
  readonly vRng: Rng;
  readonly aRng: Rng;
  readonly streams: SseStream[] = [];
  readonly log: Logged[] = [];
  readonly outcome: Outcome = {
    victim: [],
    distinguishable: [],
    oracle: [],
    leaks: [],
    trace: [],
    compared: 0,
  };
  step = 0;

  // The victim's side.
  readonly vNames = new Names();
  vPublisher: Record<string, string> = {};
  vWatcher: SseStream | undefined;
  readonly vHeld: Held[] = [];
  /** Every id V's accepted events carry: chosen ids, positions, Mercure's urn:uuid ids. */
  readonly vEventIds: string[] = [];
  /** V's ids that live in its namespace (chosen, and Mercure's urn:uuid), with their shapes. */
  readonly vChosen: { readonly id: string; readonly shape: Shape }[] = [];
  /** V's auto ids: positions in the shared log. */
  readonly vPositions: string[] = [];
  /** What V's polls said to continue from. */
  readonly vCursors: string[] = [];
  vEvents = 0;
  vSyncs = 0;

  // The attacker's side: x with V's ids on V's topic names, y with fresh ids on a mirror copy.
  readonly sideX: Side = { tag: 'x', topic: (name) => name, names: new Names(stripSide) };
  readonly sideY: Side = { tag: 'y', topic: (name) => `mirror/${name}`, names: new Names(stripSide) };
  aPublisher: Record<string, string> = {};
  aSubscriber: Record<string, string> = {};
  aWatcher: SseStream | undefined;
  aSecret = '';
  /** V's ids the attacker used, each with its twin: a fresh id of the same shape. */
  readonly twins = new Map<string, string>();
  aEvents = 0;

  constructor(hub: TestHub, setup: Case, attacked: boolean) {
    this.hub = hub;
    this.victim = setup.victim;
    this.attacker = setup.attacker;
    this.attacked = attacked;
    this.vRng = random(setup.seed);
    this.aRng = random(setup.seed * 7919 + 17);
  }

  see(seen: unknown): void {
    this.outcome.victim.push({ step: this.step, seen });
  }

  /** Opens a native stream; an accepted one is ready once herald.connected is in. */
  async open(url: string, headers: Record<string, string>, lastEventId?: string): Promise<SseStream> {
    const stream = await openStream(url, lastEventId === undefined ? { headers } : { headers, lastEventId });
    this.streams.push(stream);
    if (stream.status === 200) await stream.untilConnected(WAIT_MS);
    else await stream.untilEnded(WAIT_MS);
    return stream;
  }

  async openMercure(
    selectors: readonly string[],
    headers: Record<string, string>,
    requested: string | undefined,
    via: 'header' | 'query',
  ): Promise<SseStream> {
    const options =
      requested === undefined
        ? { headers }
        : via === 'header'
          ? { headers, lastEventId: requested }
          : { headers, query: { lastEventID: requested } };
    const stream = await mercureStream(this.hub.url, selectors, options);
    this.streams.push(stream);
    // An accepted Mercure stream sends no herald.connected, but it is in the hub's index before
    // its headers leave (node.ts opens it right after flushing them), and the sync events that
    // follow show what it received.
    if (stream.status !== 200) await stream.untilEnded(WAIT_MS);
    return stream;
  }

  async start(): Promise<void> {
    const { victim, attacker } = this;
    this.vPublisher = bearer(await token({ tenant: victim, publish: ['*'], sub: 'svc' }));
    this.vWatcher = await this.open(
      `${this.hub.url}/v1/events?topic=*`,
      bearer(await token({ tenant: victim, subscribe: ['*'], sub: 'watcher' })),
    );
    if (!this.attacked) return;
    // The attacker's credentials carry the same subjects as the victim's: subjects are the
    // issuer's business, and two tenants' user ids may well collide.
    this.aPublisher = bearer(await token({ tenant: attacker, publish: ['*'], sub: 'svc' }));
    this.aSubscriber = bearer(await token({ tenant: attacker, subscribe: ['*'], sub: 'user-1' }));
    this.aWatcher = await this.open(
      `${this.hub.url}/v1/events?topic=*`,
      bearer(await token({ tenant: attacker, subscribe: ['*'], sub: 'watcher' })),
    );
    this.aSecret = connectedOf(this.aWatcher)?.secret ?? '';
  }

  async play(): Promise<Outcome> {
    await this.start();
    for (this.step = 0; this.step < VICTIM_STEPS; this.step++) {
      if (this.attacked) {
        const attacks = this.aRng.pick([0, 1, 1, 2, 2]);
        for (let i = 0; i < attacks; i++) await this.attack();
      }
      await this.victimStep();
    }
    this.step = VICTIM_STEPS;
    await this.sync();
    for (const held of this.vHeld) if (!held.closed) this.closeVictim(held);
    this.see({ watcher: view(this.heldOf(this.vWatcher as SseStream), this.vNames) });
    for (const held of this.vHeld) this.checkOwn(held.stream, 'V:', `victim stream ${held.label}`);
    this.checkOwn(this.vWatcher as SseStream, 'V:', 'victim watcher');
    if (this.aWatcher !== undefined) this.checkOwn(this.aWatcher, 'A:', 'attacker watcher');
    return this.outcome;
  }

  heldOf(stream: SseStream): Held {
    return {
      label: 'watcher',
      kind: 'native',
      selectors: ['*'],
      headers: {},
      requested: undefined,
      stream,
      closed: false,
      resumed: false,
    };
  }

  checkOwn(stream: SseStream, prefix: string, what: string): void {
    for (const event of stream.data) {
      if (!event.data.startsWith(prefix))
        this.outcome.leaks.push(`${what} received ${JSON.stringify(event)}`);
    }
  }

  // ---- the victim

  async victimStep(): Promise<void> {
    const rng = this.vRng;
    const open = this.vHeld.filter((h) => !h.closed);
    const r = rng.next();
    if (open.length >= 8 || (r < 0.1 && open.length > 0)) return this.victimClose(rng.pick(open));
    if (r < 0.34) return this.victimPublish();
    if (r < 0.46) return this.victimPublishMercure();
    if (r < 0.58) return this.victimOpen(rng.chance(0.7) ? 'native' : 'mercure');
    if (r < 0.68) return this.victimResume();
    if (r < 0.84) return this.victimPoll();
    if (r < 0.94) return this.victimChange();
    return this.sync();
  }

  freshVictimId(): { id: string; shape: Shape } {
    for (;;) {
      const shape = this.vRng.pick(CHOSEN_SHAPES);
      const id = SHAPES[shape](this.vRng);
      if (!this.vEventIds.includes(id)) return { id, shape };
    }
  }

  /** Where V resumes or polls from: none, one of its ids, a cursor a poll gave, or an id never used. */
  victimFrom(): string | undefined {
    const rng = this.vRng;
    const r = rng.next();
    if (r < 0.2 || this.vEventIds.length === 0) return undefined;
    if (r < 0.75) return rng.pick(this.vEventIds);
    if (r < 0.85 && this.vCursors.length > 0) return rng.pick(this.vCursors);
    return this.freshVictimId().id;
  }

  async victimToken(): Promise<Record<string, string>> {
    const rng = this.vRng;
    const r = rng.next();
    const grants = r < 0.4 ? ['*'] : r < 0.6 ? [] : rng.some(SELECTORS.slice(0, -1), 2);
    if (this.victim === '' && rng.chance(0.3)) return {};
    return bearer(await token({ tenant: this.victim, subscribe: grants, sub: 'user-1' }));
  }

  /** Waits until `stream` has an event with this data: it was dispatched. */
  async waitFor(stream: SseStream, data: string): Promise<boolean> {
    try {
      await stream.until((s) => s.data.some((e) => e.data === data), WAIT_MS, JSON.stringify(data));
      return true;
    } catch {
      return false;
    }
  }

  accepted(who: 'victim', drafts: { topic: string[]; data: string; id?: string }[], ids: string[]): void {
    for (const [i, draft] of drafts.entries()) {
      const id = ids[i] as string;
      this.log.push({ who, topics: draft.topic, data: draft.data, id });
      this.vEventIds.push(id);
      if (draft.id !== undefined) continue;
      this.vNames.set(id, `id-of:${draft.data}`);
      if (id.startsWith('urn:uuid:')) this.vChosen.push({ id, shape: 'urn' });
      else this.vPositions.push(id);
    }
  }

  async victimPublish(): Promise<void> {
    const rng = this.vRng;
    const count = rng.chance(0.15) ? 2 + rng.int(2) : 1;
    const drafts: { topic: string[]; data: string; id?: string; private?: boolean; type?: string }[] = [];
    const fresh: { id: string; shape: Shape }[] = [];
    for (let i = 0; i < count; i++) {
      const draft: (typeof drafts)[number] = { topic: rng.some(TOPICS, 2), data: `V:${++this.vEvents}` };
      if (rng.chance(0.3)) draft.private = true;
      if (rng.chance(0.3)) draft.type = 'update';
      const r = rng.next();
      if (r < 0.4) {
        const chosen = this.freshVictimId();
        draft.id = chosen.id;
        fresh.push(chosen);
      } else if (r < 0.45 && this.vChosen.length > 0) draft.id = rng.pick(this.vChosen).id;
      else if (r < 0.5) draft.id = `${1 + rng.int(1e9)}-${rng.int(10)}`;
      drafts.push(draft);
    }
    const answer = await call(`${this.hub.url}/v1/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...this.vPublisher },
      body: JSON.stringify(count === 1 ? drafts[0] : drafts),
    });
    if (answer.status === 202) {
      const body = answer.body as { id?: string; ids?: string[] };
      this.accepted('victim', drafts, body.ids ?? [body.id as string]);
      for (const chosen of fresh) this.vChosen.push(chosen);
      await this.waitFor(this.vWatcher as SseStream, (drafts.at(-1) as { data: string }).data);
      this.see({ publish: 202, ids: (body.ids ?? [body.id]).map((id) => this.vNames.id(id)) });
    } else this.see({ publish: answer.status, problem: problem(answer.body, this.vNames) });
  }

  async victimPublishMercure(): Promise<void> {
    const rng = this.vRng;
    const topic = rng.some(TOPICS, 2);
    const data = `V:${++this.vEvents}`;
    let id: string | undefined;
    let fresh: { id: string; shape: Shape } | undefined;
    const r = rng.next();
    if (r < 0.35) {
      fresh = this.freshVictimId();
      id = fresh.id;
    } else if (r < 0.5 && this.vChosen.length > 0) {
      // Mercure allows a repeated id (a topic's revision): it names the newest event from then on.
      id = rng.pick(this.vChosen).id;
    }
    const update = { topic, data, private: rng.chance(0.3), ...(rng.chance(0.3) ? { type: 'update' } : {}) };
    const answer = await mercurePublish(
      this.hub.url,
      id === undefined ? update : { ...update, id },
      this.vPublisher,
    );
    if (answer.status === 200) {
      this.accepted('victim', [id === undefined ? { topic, data } : { topic, data, id }], [answer.body]);
      if (fresh !== undefined) this.vChosen.push(fresh);
      await this.waitFor(this.vWatcher as SseStream, data);
      this.see({ mercurePublish: 200, id: this.vNames.id(answer.body) });
    } else {
      this.see({ mercurePublish: answer.status, problem: problem(JSON.parse(answer.body), this.vNames) });
    }
  }

  async victimOpen(
    kind: 'native' | 'mercure',
    again?: { selectors: readonly string[]; headers: Record<string, string>; from: string | undefined },
  ): Promise<void> {
    const rng = this.vRng;
    const selectors = again?.selectors ?? [SYNC, ...rng.some(SELECTORS, 2)];
    const headers = again?.headers ?? (await this.victimToken());
    let requested = again === undefined ? this.victimFrom() : again.from;
    if (kind === 'mercure' && again === undefined && rng.chance(0.15)) requested = 'earliest';
    const via = rng.chance(0.5) ? 'header' : 'query';
    let stream: SseStream;
    if (kind === 'native') {
      const query = selectors.map((s) => `topic=${encodeURIComponent(s)}`);
      if (requested !== undefined && via === 'query')
        query.push(`lastEventId=${encodeURIComponent(requested)}`);
      const url = `${this.hub.url}/v1/events?${query.join('&')}`;
      stream = await this.open(url, headers, via === 'header' ? requested : undefined);
    } else stream = await this.openMercure(selectors, headers, requested, via);
    const label = `v${this.vHeld.length}`;
    const seen = {
      open: kind,
      label,
      status: stream.status,
      lastEventIdHeader: this.vNames.header(stream.headers['last-event-id']),
    };
    if (stream.status !== 200) {
      this.see({ ...seen, problem: problem(JSON.parse(stream.raw || '{}'), this.vNames) });
      return;
    }
    this.see(seen);
    const connectionId = connectedOf(stream)?.connectionId;
    if (connectionId !== undefined) this.vNames.set(connectionId, `connection-of:${label}`);
    this.vHeld.push({ label, kind, selectors, headers, requested, stream, closed: false, resumed: false });
  }

  closeVictim(held: Held): void {
    held.stream.close();
    held.closed = true;
    this.see({ close: held.label, received: view(held, this.vNames) });
  }

  /** Closes a stream once it has everything dispatched so far, and writes down what it received. */
  async victimClose(held: Held): Promise<void> {
    await this.sync();
    this.closeVictim(held);
  }

  /** Reopens a closed stream as EventSource would: same selectors, from the last id it saw. */
  async victimResume(): Promise<void> {
    const closed = this.vHeld.filter((h) => h.closed && !h.resumed);
    if (closed.length === 0) return this.victimOpen('native');
    const held = this.vRng.pick(closed);
    held.resumed = true;
    const from = lastIdOf(held.stream);
    this.see({ resume: held.label, from: this.vNames.id(from) });
    return this.victimOpen(held.kind, { selectors: held.selectors, headers: held.headers, from });
  }

  async victimPoll(): Promise<void> {
    const rng = this.vRng;
    const query = [SYNC, ...rng.some(SELECTORS, 2)].map((s) => `topic=${encodeURIComponent(s)}`);
    const after = this.victimFrom();
    if (after !== undefined) query.push(`after=${encodeURIComponent(after)}`);
    if (rng.chance(0.5)) query.push(`limit=${1 + rng.int(4)}`);
    // Mostly no wait (nothing else happens meanwhile); sometimes a real long poll that times out.
    query.push(`wait=${rng.chance(0.05) ? 1 : 0}`);
    const headers = await this.victimToken();
    const answer = await call(`${this.hub.url}/v1/events/poll?${query.join('&')}`, { headers });
    this.see({ poll: answer.status, body: this.pollView(answer, this.vNames, after) });
    if (answer.status === 200) this.vCursors.push((answer.body as { lastEventId: string }).lastEventId);
  }

  pollView(answer: Answer, names: Names, after: string | undefined) {
    if (answer.status !== 200) return problem(answer.body, names);
    const body = answer.body as {
      events: { id: string; type: string; data: string }[];
      lastEventId: string;
      gap?: string;
    };
    return {
      events: body.events.map((e) => ({ id: names.id(e.id), type: e.type, data: names.data(e.data) })),
      lastEventId:
        body.events.length > 0 ? names.id(body.lastEventId) : names.cursor(body.lastEventId, after),
      gap: body.gap,
    };
  }

  /** V changes one of its own streams, with its secret (now and then a wrong one). */
  async victimChange(): Promise<void> {
    const rng = this.vRng;
    const native = this.vHeld.filter((h) => !h.closed && h.kind === 'native');
    if (native.length === 0) return this.victimPoll();
    const held = rng.pick(native);
    const connected = connectedOf(held.stream);
    const removable = held.selectors.filter((s) => s !== SYNC);
    const unsubscribe = removable.length > 0 && rng.chance(0.4);
    const topics = [unsubscribe ? rng.pick(removable) : rng.pick(SELECTORS)];
    const secret = rng.chance(0.9) ? connected?.secret : SHAPES.secret(rng);
    const answer = await call(`${this.hub.url}/v1/subscriptions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...held.headers },
      body: JSON.stringify({
        connectionId: connected?.connectionId,
        secret,
        action: unsubscribe ? 'unsubscribe' : 'subscribe',
        topics,
      }),
    });
    if (answer.status === 200) {
      const body = answer.body as { connectionId: string; topics: string[] };
      held.selectors = body.topics;
      this.see({
        change: held.label,
        status: 200,
        connectionId: this.vNames.id(body.connectionId),
        topics: body.topics,
      });
    } else
      this.see({ change: held.label, status: answer.status, problem: problem(answer.body, this.vNames) });
  }

  /** A sync event on every stream V holds: once each has it, each has all that was dispatched before. */
  async sync(): Promise<void> {
    const data = `V:sync-${++this.vSyncs}`;
    const answer = await this.hub.publish({ topic: SYNC, data }, this.vPublisher);
    if (answer.status !== 202) {
      this.see({ sync: data, status: answer.status, problem: problem(answer.body, this.vNames) });
      return;
    }
    this.accepted('victim', [{ topic: [SYNC], data }], [answer.body.id as string]);
    await this.waitFor(this.vWatcher as SseStream, data);
    for (const held of this.vHeld) {
      if (held.closed || held.stream.ended) continue;
      if (!(await this.waitFor(held.stream, data))) this.see({ syncMissed: held.label, sync: data });
    }
  }

  // ---- the attacker

  async attack(): Promise<void> {
    const rng = this.aRng;
    const r = rng.next();
    const before = this.outcome.trace.length;
    if (r < 0.2) await this.attackPublish('native');
    else if (r < 0.32) await this.attackPublish('mercure');
    else if (r < 0.4) await this.attackPositionPublish();
    else if (r < 0.54) await this.attackResume('native');
    else if (r < 0.64) await this.attackResume('mercure');
    else if (r < 0.76) await this.attackPoll();
    else if (r < 0.86) await this.attackAutoIds();
    else if (r < 0.94) await this.attackSubscriptions();
    else await this.attackTenant();
    if (this.outcome.trace.length === before) await this.attackPublish('native');
  }

  trace(what: string): void {
    this.outcome.trace.push(`step ${this.step}: ${what}`);
  }

  /** One of V's ids the attacker learnt, and its twin (a fresh id of the same shape), named alike. */
  probe(id: string, shape: Shape): string {
    let twin = this.twins.get(id);
    if (twin === undefined) {
      twin = SHAPES[shape](this.aRng);
      this.twins.set(id, twin);
      const label = `probe-${this.twins.size}`;
      this.sideX.names.set(id, label);
      this.sideY.names.set(twin, label);
    }
    return twin;
  }

  victimChosen(): { x: string; y: string } | undefined {
    if (this.vChosen.length === 0) return undefined;
    const { id, shape } = this.aRng.pick(this.vChosen);
    return { x: id, y: this.probe(id, shape) };
  }

  compare(what: string, x: unknown, y: unknown): void {
    const [a, b] = [JSON.stringify(x), JSON.stringify(y)];
    this.outcome.compared++;
    if (a !== b) {
      this.outcome.distinguishable.push(
        `step ${this.step}, ${what}:\n      with V's id: ${a}\n    with a fresh id: ${b}`,
      );
    }
  }

  /** The attacker publishes on one side; waits until its watcher has the event. */
  async attackerPublishOn(
    side: Side,
    via: 'native' | 'mercure',
    event: { names: readonly string[]; n: number; private: boolean; type?: string; id?: string },
  ) {
    const topic = event.names.map(side.topic);
    const data = `A:${event.n}:${side.tag}`;
    let status: number;
    let id: string | undefined;
    let body: unknown;
    if (via === 'native') {
      const draft = { topic, data, private: event.private, type: event.type, id: event.id };
      const answer = await this.hub.publish(draft, this.aPublisher);
      status = answer.status;
      body = answer.body;
      id = status === 202 ? (answer.body.id as string) : undefined;
    } else {
      const update = { topic, data, private: event.private, type: event.type, id: event.id };
      const answer = await mercurePublish(this.hub.url, update, this.aPublisher);
      status = answer.status;
      body = status === 200 ? answer.body : JSON.parse(answer.body);
      id = status === 200 ? answer.body : undefined;
    }
    if (id === undefined) return { status, problem: problem(body, side.names) };
    this.log.push({ who: 'attacker', side: side.tag, topics: topic, data, id });
    if (event.id === undefined) side.names.set(id, `id-of:A:${event.n}`);
    await this.waitFor(this.aWatcher as SseStream, data);
    return { status, id: side.names.id(id) };
  }

  /** The same event on both sides: with V's id (or none) on x, with its twin on y. */
  async attackerPublishBoth(
    via: 'native' | 'mercure',
    names: readonly string[],
    ids: { x: string; y: string } | undefined,
    what: string,
  ): Promise<void> {
    const rng = this.aRng;
    const event = {
      names,
      n: ++this.aEvents,
      private: rng.chance(0.3),
      type: rng.chance(0.3) ? 'x' : undefined,
    };
    const x = await this.attackerPublishOn(this.sideX, via, { ...event, id: ids?.x });
    const y = await this.attackerPublishOn(this.sideY, via, { ...event, id: ids?.y });
    this.compare(what, x, y);
  }

  /** Publishes its own events with V's chosen ids (native: a 409 would confirm them; Mercure: reuse). */
  async attackPublish(via: 'native' | 'mercure'): Promise<void> {
    const ids = this.aRng.chance(0.75) ? this.victimChosen() : undefined;
    const names = this.aRng.some(TOPICS, 2);
    this.trace(`${via} publish on V's topic names ${JSON.stringify(names)} with id ${ids?.x ?? '(none)'}`);
    await this.attackerPublishBoth(via, names, ids, `${via} publish with V's chosen id ${ids?.x}`);
  }

  /** Publishes with V's auto ids as chosen ids: refused (400) on every broker, like any position. */
  async attackPositionPublish(): Promise<void> {
    if (this.vPositions.length === 0) return;
    const rng = this.aRng;
    const position = rng.pick(this.vPositions);
    const twin = sameShape(position, rng);
    const via = rng.chance(0.5) ? 'native' : 'mercure';
    this.trace(`${via} publish with V's auto id ${position}`);
    const names = rng.some(TOPICS, 2);
    this.sideX.names.set(position, '<position probe>');
    this.sideY.names.set(twin, '<position probe>');
    const event = { names, n: ++this.aEvents, private: false };
    const x = await this.attackerPublishOn(this.sideX, via, { ...event, id: position });
    const y = await this.attackerPublishOn(this.sideY, via, { ...event, id: twin });
    this.compare(`${via} publish with V's auto id ${position}`, x, y);
    if (x.status !== 400) {
      this.outcome.oracle.push(
        `step ${this.step}: ${via} publish with id ${position} answered ${x.status}, not 400`,
      );
    }
  }

  async attackerSync(): Promise<string> {
    const n = ++this.aEvents;
    const event = { names: [SYNC], n, private: false };
    await this.attackerPublishOn(this.sideX, 'native', event);
    await this.attackerPublishOn(this.sideY, 'native', event);
    return `A:${n}`;
  }

  attackerHeaders(): Record<string, string> {
    return this.attacker === '' && this.aRng.chance(0.3) ? {} : this.aSubscriber;
  }

  /** Resumes with V's chosen ids: must answer as an id nobody used (gap, events, headers). */
  async attackResume(kind: 'native' | 'mercure'): Promise<void> {
    const ids = this.victimChosen();
    if (ids === undefined) return;
    const rng = this.aRng;
    const selectors = [SYNC, ...rng.some(SIDE_SELECTORS, 2)];
    const via = rng.chance(0.5) ? 'header' : 'query';
    const headers = this.attackerHeaders();
    this.trace(`${kind} resume (${via}) with V's id ${ids.x}`);
    const held: Held[] = [];
    for (const [side, requested] of [
      [this.sideX, ids.x],
      [this.sideY, ids.y],
    ] as const) {
      const topics = selectors.map(side.topic);
      let stream: SseStream;
      if (kind === 'native') {
        const query = topics.map((s) => `topic=${encodeURIComponent(s)}`);
        if (via === 'query') query.push(`lastEventId=${encodeURIComponent(requested)}`);
        const url = `${this.hub.url}/v1/events?${query.join('&')}`;
        stream = await this.open(url, headers, via === 'header' ? requested : undefined);
      } else stream = await this.openMercure(topics, headers, requested, via);
      held.push({
        label: side.tag,
        kind,
        selectors: topics,
        headers,
        requested,
        stream,
        closed: false,
        resumed: false,
      });
    }
    const sync = await this.attackerSync();
    const seen = await Promise.all(
      held.map(async (h, i) => {
        const side = i === 0 ? this.sideX : this.sideY;
        const synced = h.stream.status === 200 ? await this.waitFor(h.stream, `${sync}:${side.tag}`) : true;
        h.stream.close();
        return {
          status: h.stream.status,
          lastEventIdHeader: side.names.header(h.stream.headers['last-event-id']),
          synced,
          received:
            h.stream.status === 200
              ? view(h, side.names)
              : problem(JSON.parse(h.stream.raw || '{}'), side.names),
        };
      }),
    );
    for (const h of held) this.checkOwn(h.stream, 'A:', `attacker ${kind} resume`);
    this.compare(`${kind} resume (${via}) with V's id ${ids.x}`, seen[0], seen[1]);
  }

  /** Long-polls from V's chosen ids: the same body as from an id nobody used. */
  async attackPoll(): Promise<void> {
    const ids = this.victimChosen();
    if (ids === undefined) return;
    const rng = this.aRng;
    const selectors = [SYNC, ...rng.some(SIDE_SELECTORS, 2)];
    const limit = rng.chance(0.5) ? `&limit=${1 + rng.int(4)}` : '';
    const headers = this.attackerHeaders();
    this.trace(`poll after V's id ${ids.x}`);
    const seen = [];
    for (const [side, after] of [
      [this.sideX, ids.x],
      [this.sideY, ids.y],
    ] as const) {
      const query = selectors.map((s) => `topic=${encodeURIComponent(side.topic(s))}`).join('&');
      const url = `${this.hub.url}/v1/events/poll?${query}&after=${encodeURIComponent(after)}&wait=0${limit}`;
      const answer = await call(url, { headers });
      seen.push({ status: answer.status, body: this.pollView(answer, side.names, after) });
    }
    this.compare(`poll after V's id ${ids.x}`, seen[0], seen[1]);
  }

  /**
   * Resumes and polls from V's auto ids. Positions are points in the shared log, so they answer
   * the same whoever asks: exactly the attacker's own events after that point, and no gap.
   */
  async attackAutoIds(): Promise<void> {
    if (this.vPositions.length === 0) return;
    const rng = this.aRng;
    const position = rng.pick(this.vPositions);
    const selectors = [SYNC, ...rng.some(SIDE_SELECTORS, 2)];
    const how = rng.pick(['header', 'query', 'mercure', 'poll'] as const);
    const limit = 1 + rng.int(6);
    this.trace(`${how} from V's auto id ${position}`);
    const expected = () => {
      const at = this.log.findIndex((e) => e.id === position);
      return this.log
        .slice(at + 1)
        .filter((e) => e.who === 'attacker' && e.side === 'x')
        .filter((e) => e.topics.some((t) => selectors.some((s) => selects(s, t))))
        .map((e) => e.data);
    };
    const query = selectors.map((s) => `topic=${encodeURIComponent(s)}`);
    const what = `${how} from V's auto id ${position}`;
    const fail = (detail: string) => this.outcome.oracle.push(`step ${this.step}, ${what}: ${detail}`);
    if (how === 'poll') {
      query.push(`after=${encodeURIComponent(position)}`, `limit=${limit}`, 'wait=0');
      const answer = await call(`${this.hub.url}/v1/events/poll?${query.join('&')}`, {
        headers: this.aSubscriber,
      });
      const body = answer.body as { events?: { data: string }[]; gap?: string };
      const got = { status: answer.status, data: body.events?.map((e) => e.data), gap: body.gap };
      const want = { status: 200, data: expected().slice(0, limit), gap: undefined };
      if (JSON.stringify(got) !== JSON.stringify(want))
        fail(`got ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
      return;
    }
    let stream: SseStream;
    if (how === 'mercure') stream = await this.openMercure(selectors, this.aSubscriber, position, 'header');
    else {
      if (how === 'query') query.push(`lastEventId=${encodeURIComponent(position)}`);
      const url = `${this.hub.url}/v1/events?${query.join('&')}`;
      stream = await this.open(url, this.aSubscriber, how === 'header' ? position : undefined);
    }
    const sync = await this.attackerSync();
    if (stream.status === 200) await this.waitFor(stream, `${sync}:x`);
    stream.close();
    this.checkOwn(stream, 'A:', `attacker ${how} resume from V's auto id`);
    const connected = stream.events.find((e) => e.type === 'herald.connected');
    const got = {
      status: stream.status,
      data: stream.data.map((e) => e.data),
      gaps: stream.events.filter((e) => e.type === 'herald.gap').map((e) => e.data),
      resumesFrom:
        how === 'mercure'
          ? stream.headers['last-event-id']
          : (JSON.parse(connected?.data ?? '{}') as { lastEventId?: string }).lastEventId,
    };
    const want = { status: 200, data: expected(), gaps: [], resumesFrom: position };
    if (JSON.stringify(got) !== JSON.stringify(want))
      fail(`got ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
  }

  /** Tries to change V's streams with their connection ids (say, read in a log). */
  async attackSubscriptions(): Promise<void> {
    const native = this.vHeld.filter((h) => !h.closed && h.kind === 'native');
    if (native.length === 0) return;
    const rng = this.aRng;
    const target = connectedOf(rng.pick(native).stream)?.connectionId as string;
    const twin = this.probe(target, 'connection');
    const secret = rng.pick(['none', 'own', 'guess'] as const);
    const guess = SHAPES.secret(rng);
    const change = rng.pick([
      { action: 'unsubscribe', topics: [SYNC] },
      { action: 'unsubscribe', topics: SELECTORS },
      { action: 'subscribe', topics: ['*'] },
    ]);
    this.trace(`POST /v1/subscriptions on V's connection ${target} (secret: ${secret}, ${change.action})`);
    const seen = [];
    for (const [side, connectionId] of [
      [this.sideX, target],
      [this.sideY, twin],
    ] as const) {
      const body: Record<string, unknown> = { connectionId, ...change };
      if (secret === 'own') body.secret = this.aSecret;
      if (secret === 'guess') body.secret = guess;
      const answer = await call(`${this.hub.url}/v1/subscriptions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...this.aSubscriber },
        body: JSON.stringify(body),
      });
      seen.push({ status: answer.status, problem: problem(answer.body, side.names) });
    }
    this.compare(`POST /v1/subscriptions on V's connection (secret: ${secret})`, seen[0], seen[1]);
  }

  /** Names V's tenant where only admins may: answered as for a tenant nobody has. */
  async attackTenant(): Promise<void> {
    if (this.victim === '') return;
    const rng = this.aRng;
    const twin = Array.from(this.victim, () => String.fromCharCode(97 + rng.int(26))).join('');
    const how = rng.pick(['publish', 'subscribe', 'poll'] as const);
    this.trace(`${how} naming V's tenant`);
    const topic = rng.pick(TOPICS);
    const seen = [];
    // Both requests alike but for the tenant's name.
    for (const tenant of [this.victim, twin]) {
      let status: number;
      let body: unknown;
      if (how === 'publish') {
        const answer = await this.hub.publish({ topic, data: 'A:tenant', tenant }, this.aPublisher);
        [status, body] = [answer.status, answer.body];
      } else if (how === 'poll') {
        const query = `topic=${encodeURIComponent(topic)}&tenant=${encodeURIComponent(tenant)}&wait=0`;
        const answer = await call(`${this.hub.url}/v1/events/poll?${query}`, { headers: this.aSubscriber });
        [status, body] = [answer.status, answer.body];
      } else {
        const query = `topic=${encodeURIComponent(topic)}&tenant=${encodeURIComponent(tenant)}`;
        const stream = await this.open(`${this.hub.url}/v1/events?${query}`, this.aSubscriber);
        stream.close();
        [status, body] = [stream.status, stream.status === 200 ? {} : JSON.parse(stream.raw || '{}')];
      }
      const { code, detail } = problem(body, this.sideX.names);
      const named = typeof detail === 'string' ? detail.split(`"${tenant}"`).join('"<tenant>"') : detail;
      seen.push({ status, code, detail: named });
    }
    this.compare(`${how} naming V's tenant`, seen[0], seen[1]);
  }
}

/** A's data carries its side (`A:<n>:x`); both sides name the same event `A:<n>`. */
function stripSide(data: string): string {
  return data.replace(/:[xy]$/, '');
}

async function play(backend: Backend, setup: Case, attacked: boolean): Promise<Outcome> {
  const hub = await hubOn(backend, OPTIONS);
  const run = new Play(hub, setup, attacked);
  try {
    return await run.play();
  } finally {
    for (const stream of run.streams) stream.close();
    await hub.close();
  }
}

/**
 * Admission limits are shared resources too: a tenant's streams and publishes must count only
 * against its own credentials, even when another tenant's issuer hands out the same subjects
 * (`user-1`, `svc`). V stays within the limits; A, with the same subjects in its own tenant,
 * takes all of its own allowance. V's answers must be the same as when it is alone.
 */
const TIGHT_LIMITS = {
  connectionsPerSecondPerIp: 0,
  streamsPerSubject: 3,
  // Practically no refill during the test: what is used stays used.
  publishesPerSecondPerSubject: 0.001,
  publishBurstPerSubject: 12,
};

async function limitsPlay(backend: Backend, attacked: boolean): Promise<unknown[]> {
  const hub = await hubOn(backend, { ...OPTIONS, limits: TIGHT_LIMITS });
  const streams: SseStream[] = [];
  const seen: unknown[] = [];
  try {
    const as = async (tenant: string, claims: { subscribe?: string[]; publish?: string[]; sub: string }) =>
      bearer(await token({ tenant, ...claims }));
    const vSubscriber = await as('acme', { subscribe: ['*'], sub: 'user-1' });
    const vPublisher = await as('acme', { publish: ['*'], sub: 'svc' });
    const aSubscriber = await as('globex', { subscribe: ['*'], sub: 'user-1' });
    const aPublisher = await as('globex', { publish: ['*'], sub: 'svc' });
    const native = async (headers: Record<string, string>) => {
      const stream = await openStream(`${hub.url}/v1/events?topic=news`, { headers });
      streams.push(stream);
      return stream.status;
    };
    const mercure = async (headers: Record<string, string>) => {
      const stream = await mercureStream(hub.url, ['news'], { headers });
      streams.push(stream);
      return stream.status;
    };
    let n = 0;
    const publish = async (headers: Record<string, string>, count: number) =>
      (
        await hub.publish(
          Array.from({ length: count }, () => ({ topic: 'news', data: `${++n}` })),
          headers,
        )
      ).status;
    const update = async (headers: Record<string, string>) =>
      (await mercurePublish(hub.url, { topic: 'news', data: `${++n}` }, headers)).status;
    const victim = async (what: string, status: Promise<number>) => seen.push({ [what]: await status });

    await victim('native stream', native(vSubscriber));
    await victim('mercure stream', mercure(vSubscriber));
    for (let i = 0; i < 3; i++) await victim('mercure publish', update(vPublisher));
    await victim('publish 3', publish(vPublisher, 3));
    if (attacked) {
      // All of A's own allowance, on the same subjects in its own tenant.
      for (let i = 0; i < TIGHT_LIMITS.streamsPerSubject; i++) await native(aSubscriber);
      await publish(aPublisher, TIGHT_LIMITS.publishBurstPerSubject);
      for (let i = 0; i < TIGHT_LIMITS.publishBurstPerSubject; i++) await update(aPublisher);
    }
    await victim('native stream', native(vSubscriber));
    for (let i = 0; i < 3; i++) await victim('mercure publish', update(vPublisher));
    await victim('publish 3', publish(vPublisher, 3));
    return seen;
  } finally {
    for (const stream of streams) stream.close();
    await hub.close();
  }
}

/** Where V's two notebooks first differ, with what the attacker did just before. */
function divergence(alone: Outcome, attacked: Outcome): string | undefined {
  const length = Math.max(alone.victim.length, attacked.victim.length);
  for (let i = 0; i < length; i++) {
    const a = JSON.stringify(alone.victim[i]);
    const b = JSON.stringify(attacked.victim[i]);
    if (a === b) continue;
    const from = i === 0 ? 0 : (attacked.victim[i - 1]?.step ?? 0);
    const to = attacked.victim[i]?.step ?? Number.POSITIVE_INFINITY;
    const steps = (line: string) => Number(/^step (\d+)/.exec(line)?.[1]);
    const attacks = attacked.trace.filter((line) => steps(line) >= from && steps(line) <= to);
    return [
      `V's observation #${i} differs:`,
      `    alone: ${a}`,
      `  attacked: ${b}`,
      `  the attacker's actions since the previous observation:`,
      ...attacks.map((line) => `    ${line}`),
    ].join('\n');
  }
  return undefined;
}

for (const backend of BACKENDS) {
  describe(`${backend.name}: nothing one tenant does is observable by another, randomized and adversarial`, () => {
    for (const setup of CASES) {
      const tenants = `victim ${JSON.stringify(setup.victim)}, attacker ${JSON.stringify(setup.attacker)}`;
      test(`the victim observes the same with and without an attacker, who cannot tell its ids from unused ones (seed ${setup.seed}, ${tenants})`, {
        timeout: 120_000,
      }, async () => {
        const alone = await play(backend, setup, false);
        const attacked = await play(backend, setup, true);
        const problems: string[] = [];
        const first = divergence(alone, attacked);
        if (first !== undefined) problems.push(first);
        for (const [what, list] of [
          ['events that crossed tenants', [...alone.leaks, ...attacked.leaks]],
          ["probes that told V's ids from unused ones", attacked.distinguishable],
          ["probes with V's auto ids that broke the oracle", attacked.oracle],
        ] as const) {
          if (list.length > 0) {
            problems.push(`${list.length} ${what}:\n  ${list.slice(0, 6).join('\n  ')}`);
          }
        }
        const received = JSON.stringify(alone.victim).match(/"data":"V:/g)?.length ?? 0;
        assert.ok(
          attacked.trace.length >= VICTIM_STEPS / 2 && attacked.compared >= 20 && received >= 80,
          `a meaningful test: ${attacked.trace.length} attacks, ${attacked.compared} probes compared, ${received} events received by V`,
        );
        if (problems.length > 0)
          assert.fail(`${backend.name}, seed ${setup.seed}:\n${problems.join('\n\n')}`);
      });
    }
  });
}

describe('admission limits are per tenant, however subjects collide', () => {
  // Limits are counted on each node, whatever the broker: one backend suffices.
  const memory = BACKENDS.find((backend) => backend.name === 'memory') as Backend;
  test('a tenant using all of its allowance with the same subjects changes no answer another tenant gets', {
    timeout: 60_000,
  }, async () => {
    const alone = await limitsPlay(memory, false);
    const attacked = await limitsPlay(memory, true);
    assert.deepEqual(attacked, alone);
  });
});
