import { type ReceivedEvent, SseStream } from './sse-client.ts';

/**
 * What a real client does across node failures: when its stream ends or fails, it connects to
 * the next node it knows, sending the last id it saw as Last-Event-ID. It does not de-duplicate:
 * whatever the hubs send twice shows up twice, so the tests can count it.
 */
export class ResumingClient {
  readonly events: ReceivedEvent[] = [];
  reconnects = 0;
  private lastId: string | undefined;
  private stream: SseStream | undefined;
  private stopped = false;
  private node: number;
  private readonly urls: () => readonly string[];
  private readonly query: string;
  private readonly loop: Promise<void>;

  constructor(urls: () => readonly string[], query: string, first = 0) {
    this.urls = urls;
    this.query = query;
    this.node = first;
    this.loop = this.run();
  }

  get data(): ReceivedEvent[] {
    return this.events.filter((event) => !event.type.startsWith('herald.'));
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const urls = this.urls();
      const url = urls[this.node % urls.length] as string;
      const stream = new SseStream(`${url}/v1/events?${this.query}`, { lastEventId: this.lastId });
      this.stream = stream;
      let seen = 0;
      try {
        await stream.opened;
        while (!this.stopped && !stream.ended) {
          await stream.until((s) => s.events.length > seen || s.ended, 60_000).catch(() => {});
          for (; seen < stream.events.length; seen++) {
            const event = stream.events[seen] as ReceivedEvent;
            if (event.id !== undefined) this.lastId = event.id;
            if (event.type !== 'herald.connected') this.events.push(event);
          }
        }
      } catch {
        // Refused or reset: try the next node.
      }
      if (this.stopped) break;
      this.reconnects++;
      this.node++;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stream?.close();
    await this.loop;
  }
}
