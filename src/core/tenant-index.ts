import type { CachedTemplate, Selector } from './topics.ts';
import { MatchBudget, templateMatching } from './topics.ts';

export interface TemplateEntry<S> {
  readonly matcher: CachedTemplate;
  readonly subscribers: Set<S>;
  /** Its place in the order templates were added: lookups made before it have not tested it. */
  readonly seq: number;
  /** Where the index files it (see `keyOf`). */
  readonly key: Key;
  /**
   * Dropped from the index (by a sweep, or replaced by a new entry for the same template when it
   * got subscribers back after having none): lookups skip it, kept results drop it when read.
   */
  swept: boolean;
}

/**
 * A literal every topic a template matches has at a known place, by which the index files it, so
 * that a topic is only tested against the templates that share one of its own literals:
 * - `prefix`: its literal start up to its last `/` (`dealers/` for `dealers/{id}/scores`);
 * - `suffix`: its literal end from its first `/` (`/scores` for `{+base}/scores`);
 * - `start` / `end`: a fully literal segment at a fixed place counted from the start or the end
 *   (`2/example.com` for `{scheme}://example.com/{id}`);
 * - `loose`: none of these; tested against every topic of the tenant.
 */
interface Key {
  readonly kind: 'prefix' | 'suffix' | 'start' | 'end' | 'loose';
  readonly text: string;
  /** For `start` and `end`: the segment's number and its text. */
  readonly segment?: number;
  readonly segmentText?: string;
}

/** The key that narrows the template's candidates the most: the one with the longest literal. */
function keyOf(matcher: CachedTemplate): Key {
  const { prefix, suffix, segments } = matcher.template;
  let best: Key = { kind: 'loose', text: '' };
  let score = 0;
  const stem = prefix.slice(0, prefix.lastIndexOf('/') + 1);
  if (stem.length > score) {
    best = { kind: 'prefix', text: stem };
    score = stem.length;
  }
  const slash = suffix.indexOf('/');
  const tail = slash === -1 ? '' : suffix.slice(slash);
  if (tail.length > score) {
    best = { kind: 'suffix', text: tail };
    score = tail.length;
  }
  // A segment is worth its text and its place: even an empty one (the `//` of a URL) rules out
  // every topic without it there.
  for (const [kind, list] of [
    ['start', segments.fromStart],
    ['end', segments.fromEnd],
  ] as const) {
    for (const [segment, text] of list) {
      if (text.length + 1 > score) {
        best = { kind, text: segmentKey(segment, text), segment, segmentText: text };
        score = text.length + 1;
      }
    }
  }
  return best;
}

const segmentKey = (segment: number, text: string) => `${segment}/${text}`;

/** A topic's matching templates, and how many templates had been added when they were found. */
interface Found<S> {
  readonly found: TemplateEntry<S>[];
  seq: number;
  /** The index's sweep count when found: entries swept since are dropped on the next read. */
  sweeps: number;
}

/** A lookup under way: its candidates, how far it has tested them, and what matched so far. */
interface Pending<S> extends Found<S> {
  readonly candidates: TemplateEntry<S>[];
  next: number;
}

const UNLIMITED = new MatchBudget(Number.POSITIVE_INFINITY);
/** What a template costs to consider beyond its matcher's own work, so a long list of cheap rejections counts too. */
const CANDIDATE_WORK = 64;

/**
 * Subscribers of one tenant by what they asked for. Exact topics are a map lookup; templates are
 * matched once per distinct topic and the result kept, so fan-out costs what the recipients cost,
 * not what the subscriber count costs. A topic is only matched against the templates filed under
 * one of its own literals (see `Key`), so a new topic costs what its few candidates cost, not one
 * test per template (10 000 per-user templates would otherwise make every new topic a 10 000-matcher
 * scan).
 *
 * Templates are subscribers' input, so what a topic's candidates cost is theirs to choose: the
 * limits on templates per stream and variables per template bound it per stream, and `prepare`
 * lets the caller spread a lookup over several turns of the event loop rather than stall it.
 * Kept results stay valid as templates come and go: a template added later is tested against a
 * kept topic on its next lookup, alone, rather than every kept result being thrown away (which
 * would let anyone who subscribes in a loop make every publish pay for a full lookup again).
 */
export class TenantIndex<S> {
  /**
   * A topic's only subscriber is kept as is, a Set only from the second on: topics of one
   * subscriber each (a user's own feed) are common, and a Set costs a few hundred bytes.
   */
  readonly exact = new Map<string, S | Set<S>>();
  readonly all = new Set<S>();
  readonly templates = new Map<string, TemplateEntry<S>>();
  /** Templates tested against a topic by this index's lookups, for tests and statistics. */
  tests = 0;
  /** Templates by key kind, then key text. */
  private readonly filed = {
    prefix: new Map<string, TemplateEntry<S>[]>(),
    suffix: new Map<string, TemplateEntry<S>[]>(),
    start: new Map<string, TemplateEntry<S>[]>(),
    end: new Map<string, TemplateEntry<S>[]>(),
    loose: new Map<string, TemplateEntry<S>[]>(),
  };
  /** Live entries in the order they were added (increasing `seq`), for what a kept result has not seen. */
  private added: TemplateEntry<S>[] = [];
  private nextSeq = 0;
  private sweeps = 0;
  /**
   * Kept lookups, in two generations: when the newer fills up it becomes the older and the older
   * is dropped, so the topics looked up last always survive (a caller that prepares an event's
   * topics one after another finds them all kept when it fans out).
   */
  private matches = new Map<string, Found<S>>();
  private older = new Map<string, Found<S>>();
  private readonly pending = new Map<string, Pending<S>>();
  /**
   * Entries left without subscribers, and those replaced since: kept so cached match lists stay
   * valid, swept in bulk.
   */
  private vacant = 0;
  size = 0;

  /** The templates matching `topic`, however much matching that takes (see `prepare`). */
  templatesFor(topic: string): readonly TemplateEntry<S>[] {
    if (this.templates.size === 0) return NONE;
    const kept = this.kept(topic);
    if (kept !== undefined) return kept.found;
    this.prepare(topic, UNLIMITED);
    return (this.kept(topic) as Found<S>).found;
  }

  /**
   * Matches `topic` against its candidates within `budget`. True when its templates are known,
   * and `templatesFor(topic)` costs a lookup from now on (until templates are added); false when
   * the budget ran out first: the work done is kept, and the next call goes on from there.
   */
  prepare(topic: string, budget: MatchBudget): boolean {
    if (this.templates.size === 0 || this.kept(topic) !== undefined) return true;
    let work = this.pending.get(topic);
    if (work === undefined) {
      const stale = this.matches.get(topic) ?? this.older.get(topic);
      work =
        stale === undefined
          ? { candidates: this.candidates(topic), next: 0, found: [], seq: this.nextSeq, sweeps: this.sweeps }
          : {
              candidates: this.addedSince(stale.seq, topic),
              next: 0,
              found: stale.found.filter(live),
              seq: this.nextSeq,
              sweeps: this.sweeps,
            };
      if (this.pending.size >= PENDING_LIMIT) {
        // The one left longest: whoever comes back for it starts it again.
        for (const oldest of this.pending.keys()) {
          this.pending.delete(oldest);
          break;
        }
      }
      this.pending.set(topic, work);
    } else if (work.seq !== this.nextSeq) {
      // Templates added while this topic was being matched are tested too.
      for (const entry of this.addedSince(work.seq, topic)) work.candidates.push(entry);
      work.seq = this.nextSeq;
    }
    const { candidates, found } = work;
    while (work.next < candidates.length) {
      if (budget.spent) return false;
      const entry = candidates[work.next++] as TemplateEntry<S>;
      // Without subscribers it reaches nobody, and comes back as a new entry if it gets some.
      if (entry.swept || entry.subscribers.size === 0) continue;
      const before = templateMatching.work;
      this.tests++;
      if (entry.matcher.test(topic)) found.push(entry);
      budget.charge(templateMatching.work - before + CANDIDATE_WORK);
    }
    this.pending.delete(topic);
    if (work.sweeps !== this.sweeps) {
      const kept = found.filter(live);
      found.length = 0;
      for (const entry of kept) found.push(entry);
      work.sweeps = this.sweeps;
    }
    if (this.matches.size >= MATCH_CACHE_LIMIT) {
      this.older = this.matches;
      this.matches = new Map();
    }
    this.matches.set(topic, { found, seq: work.seq, sweeps: work.sweeps });
    return true;
  }

  /** A kept lookup that is still complete, its swept entries dropped; undefined otherwise. */
  private kept(topic: string): Found<S> | undefined {
    let kept = this.matches.get(topic);
    if (kept === undefined) {
      kept = this.older.get(topic);
      if (kept === undefined) return undefined;
      this.older.delete(topic);
      if (this.matches.size >= MATCH_CACHE_LIMIT) {
        this.older = this.matches;
        this.matches = new Map();
      }
      this.matches.set(topic, kept);
    }
    if (kept.seq !== this.nextSeq) return undefined;
    if (kept.sweeps !== this.sweeps) {
      const found = kept.found.filter(live);
      kept = { found, seq: kept.seq, sweeps: this.sweeps };
      this.matches.set(topic, kept);
    }
    return kept;
  }

  /** Every template filed under a key `topic` has: the only ones that can match it. */
  private candidates(topic: string): TemplateEntry<S>[] {
    const out: TemplateEntry<S>[] = [];
    const { prefix, suffix, start, end, loose } = this.filed;
    append(out, loose.get(''));
    if (prefix.size > 0 || suffix.size > 0) {
      for (let slash = topic.indexOf('/'); slash !== -1; slash = topic.indexOf('/', slash + 1)) {
        if (prefix.size > 0) append(out, prefix.get(topic.slice(0, slash + 1)));
        if (suffix.size > 0) append(out, suffix.get(topic.slice(slash)));
      }
    }
    if (start.size > 0 || end.size > 0) {
      const segments = topic.split('/');
      const last = segments.length - 1;
      segments.forEach((text, i) => {
        if (start.size > 0) append(out, start.get(segmentKey(i, text)));
        if (end.size > 0) append(out, end.get(segmentKey(last - i, text)));
      });
    }
    return out;
  }

  /** Live templates added since `seq` that are filed under a key of `topic`. */
  private addedSince(seq: number, topic: string): TemplateEntry<S>[] {
    const { added } = this;
    // Binary search for the first entry with seq >= `seq`.
    let low = 0;
    let high = added.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((added[middle] as TemplateEntry<S>).seq < seq) low = middle + 1;
      else high = middle;
    }
    const out: TemplateEntry<S>[] = [];
    let segments: string[] | undefined;
    for (let i = low; i < added.length; i++) {
      const entry = added[i] as TemplateEntry<S>;
      const { kind, text, segment, segmentText } = entry.key;
      let candidate: boolean;
      if (kind === 'prefix') candidate = topic.startsWith(text);
      else if (kind === 'suffix') candidate = topic.endsWith(text);
      else if (kind === 'loose') candidate = true;
      else {
        segments ??= topic.split('/');
        const at = kind === 'start' ? (segment as number) : segments.length - 1 - (segment as number);
        candidate = segments[at] === segmentText;
      }
      if (candidate) out.push(entry);
    }
    return out;
  }

  add(selector: Selector, subscriber: S): void {
    switch (selector.kind) {
      case 'exact': {
        const present = this.exact.get(selector.source);
        if (present === undefined) this.exact.set(selector.source, subscriber);
        else if (present instanceof Set) present.add(subscriber);
        else if (present !== subscriber) this.exact.set(selector.source, new Set([present, subscriber]));
        return;
      }
      case 'all':
        this.all.add(subscriber);
        return;
      case 'template': {
        let entry = this.templates.get(selector.source);
        if (entry !== undefined && entry.subscribers.size === 0) {
          // Lookups skip a template without subscribers, so one that gets them back returns as a
          // new entry, tested against kept topics like any template added. The old one stays
          // counted as vacant until a sweep drops it.
          entry.swept = true;
          entry = undefined;
        }
        if (entry === undefined) {
          const key = keyOf(selector.matcher);
          entry = {
            matcher: selector.matcher,
            subscribers: new Set(),
            seq: this.nextSeq++,
            key,
            swept: false,
          };
          this.templates.set(selector.source, entry);
          this.added.push(entry);
          const shelf = this.filed[key.kind];
          const siblings = shelf.get(key.text);
          if (siblings === undefined) shelf.set(key.text, [entry]);
          else siblings.push(entry);
        }
        entry.subscribers.add(subscriber);
        return;
      }
    }
  }

  remove(selector: Selector, subscriber: S): void {
    switch (selector.kind) {
      case 'exact': {
        const present = this.exact.get(selector.source);
        if (present === subscriber) this.exact.delete(selector.source);
        else if (present instanceof Set && present.delete(subscriber) && present.size === 1) {
          for (const last of present) this.exact.set(selector.source, last);
        }
        return;
      }
      case 'all':
        this.all.delete(subscriber);
        return;
      case 'template': {
        const entry = this.templates.get(selector.source);
        if (entry?.subscribers.delete(subscriber) && entry.subscribers.size === 0) {
          this.vacant++;
          if (this.vacant > VACANT_SWEEP && this.vacant * 2 > this.templates.size) this.sweep();
        }
        return;
      }
    }
  }

  /**
   * Drops the entries left without subscribers. Kept lookups are not thrown away (that would let
   * a subscriber that comes and goes make every topic pay for a full lookup again): they drop
   * their swept entries when next read, and a template added again later is a new entry, tested
   * on its own.
   */
  private sweep(): void {
    for (const [source, entry] of this.templates) {
      if (entry.subscribers.size === 0) {
        entry.swept = true;
        this.templates.delete(source);
      }
    }
    for (const shelf of Object.values(this.filed)) {
      for (const [text, entries] of shelf) {
        const kept = entries.filter(live);
        if (kept.length === 0) shelf.delete(text);
        else shelf.set(text, kept);
      }
    }
    this.added = this.added.filter(live);
    this.vacant = 0;
    this.sweeps++;
  }
}

const live = <S>(entry: TemplateEntry<S>) => !entry.swept;

function append<T>(out: T[], entries: readonly T[] | undefined): void {
  if (entries !== undefined) for (const entry of entries) out.push(entry);
}

const NONE: readonly never[] = [];
// Above the distinct topics a busy tenant publishes to at once: the older half is dropped when the
// newer fills up, and a dropped result costs one candidate scan per topic again.
const MATCH_CACHE_LIMIT = 50_000;
/** Lookups under way at once: one per topic that fan-out, a publisher, a replay or a poll is matching over several turns. */
const PENDING_LIMIT = 1_024;
const VACANT_SWEEP = 64;
