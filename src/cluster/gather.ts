import type { Answer, Question } from './messages.ts';

/** How long a question waits for every live node, ms. */
export const DEFAULT_GATHER_TIMEOUT_MS = 2_000;

/** What every node answered to a question. */
export interface Gathered<T> {
  /** The answers by node id, this node's included. */
  readonly answers: ReadonlyMap<string, T>;
  /** Live nodes that did not answer within the timeout (or failed to): the result leaves them out. */
  readonly incomplete: readonly string[];
}

/** How this node answers a kind of question. */
export type Answerer = (args: unknown) => unknown;

interface Pending {
  readonly expected: ReadonlySet<string>;
  readonly answers: Map<string, unknown>;
  /** Nodes that answered or said they could not. */
  readonly heard: Set<string>;
  readonly done: () => void;
}

/**
 * Asks every live node a question over the bus and collects their answers: the question goes out
 * with a correlation id, each node broadcasts its answer addressed to the asker (`to`), and the
 * asker waits for every node of the roster up to a timeout, then answers with what it has and
 * names the nodes that did not answer (`incomplete`). This node answers itself directly.
 */
export class Gather {
  private readonly self: string;
  private readonly send: (message: Question | Answer) => void;
  private readonly live: () => readonly string[];
  private readonly timeoutMs: number;
  private readonly answerers = new Map<string, Answerer>();
  private readonly pending = new Map<string, Pending>();

  constructor(
    self: string,
    send: (message: Question | Answer) => void,
    live: () => readonly string[],
    timeoutMs = DEFAULT_GATHER_TIMEOUT_MS,
  ) {
    this.self = self;
    this.send = send;
    this.live = live;
    this.timeoutMs = timeoutMs;
  }

  /** How this node answers `question`: what `answerer` returns (or resolves with) is sent back. */
  answer(question: string, answerer: Answerer): void {
    this.answerers.set(question, answerer);
  }

  /** Asks every live node `question` and resolves with their answers (after at most the timeout). */
  async ask<T>(question: string, args: unknown): Promise<Gathered<T>> {
    const id = globalThis.crypto.randomUUID();
    const expected = new Set(this.live());
    expected.delete(this.self);
    const answers = new Map<string, unknown>();
    const own = this.answerers.get(question);
    if (own === undefined) throw new Error(`no answerer for ${question}`);
    const everyone = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.pending.set(id, { expected, answers, heard: new Set(), done });
      if (expected.size === 0) done();
    });
    try {
      if (expected.size > 0) this.send({ kind: 'ask', from: this.self, id, question, args });
      answers.set(this.self, await own(args));
      await everyone;
    } finally {
      this.pending.delete(id);
    }
    const incomplete = [...expected].filter((node) => !answers.has(node));
    return { answers: answers as Map<string, T>, incomplete };
  }

  /** A question heard on the bus: answered unless it is this node's own. */
  async heardQuestion(message: Question): Promise<void> {
    if (message.from === this.self) return;
    const answerer = this.answerers.get(message.question);
    const reply = (fields: { body?: unknown; error?: string }) =>
      this.send({ kind: 'answer', from: this.self, to: message.from, id: message.id, ...fields });
    if (answerer === undefined) return reply({ error: `unknown question ${message.question}` });
    try {
      reply({ body: await answerer(message.args) });
    } catch (error) {
      reply({ error: error instanceof Error ? error.message : String(error) });
    }
  }

  /** An answer heard on the bus: kept when it is for a question of this node still waiting. */
  heardAnswer(message: Answer): void {
    if (message.to !== this.self) return;
    const pending = this.pending.get(message.id);
    if (pending === undefined) return;
    // A node that failed to answer stays in `incomplete`; one the roster did not know yet counts.
    if (message.error === undefined) pending.answers.set(message.from, message.body);
    pending.heard.add(message.from);
    for (const node of pending.expected) if (!pending.heard.has(node)) return;
    pending.done();
  }
}
