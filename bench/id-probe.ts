import http from 'node:http';
import { payloadSeq } from './payload.ts';
import { protocolNamed } from './protocols.ts';
import type { RunningTarget } from './targets.ts';

/**
 * One SSE stream the orchestrator holds itself to learn the id the server gave each event (its
 * `id:` line): a reconnecting client names the last event it saw by that id, and every peer
 * makes up its own (Herald `<epoch>-<seq>`, Nchan `<time>:<tag>`).
 */
export class IdProbe {
  private readonly ids = new Map<number, string>();
  private readonly request: http.ClientRequest;
  private waiter: { seq: number; resolve: () => void } | undefined;
  private failure: Error | undefined;

  private constructor(request: http.ClientRequest) {
    this.request = request;
  }

  /** Opens the stream on `topic`; resolves once it is subscribed (as the protocol tells). */
  static open(target: RunningTarget, topic: string, timeoutMs = 10_000): Promise<IdProbe> {
    const protocol = protocolNamed(target.protocol);
    const { host, port } = target.subscribeTo;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        request.destroy();
        reject(new Error(`the id probe's stream was not ready within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      const request = http.get(
        { host, port, path: protocol.subscribePath(topic), headers: { accept: 'text/event-stream' } },
        (response) => {
          if (response.statusCode !== 200) {
            clearTimeout(timer);
            reject(new Error(`the id probe's stream answered HTTP ${response.statusCode}`));
            response.resume();
            return;
          }
          const ready = () => {
            clearTimeout(timer);
            resolve(probe);
          };
          if (protocol.readyAfter === 'headers') ready();
          let text = '';
          let first = true;
          response.setEncoding('latin1');
          response.on('data', (chunk: string) => {
            text += chunk;
            for (;;) {
              const end = text.indexOf('\n\n');
              if (end === -1) break;
              probe.block(text.substring(0, end));
              text = text.substring(end + 2);
              if (first) {
                first = false;
                if (protocol.readyAfter === 'first-event') ready();
              }
            }
          });
          response.on('error', (error) => probe.fail(error));
          response.on('end', () => probe.fail(new Error("the id probe's stream ended")));
        },
      );
      const probe = new IdProbe(request);
      request.on('error', (error) => {
        clearTimeout(timer);
        probe.fail(error);
        reject(error);
      });
    });
  }

  /** Resolves once the event numbered `seq` has come, with its id (undefined if it came without one). */
  async idOf(seq: number, timeoutMs: number): Promise<string | undefined> {
    if (!this.ids.has(seq)) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`the id probe did not see event ${seq} within ${timeoutMs / 1000} s`)),
          timeoutMs,
        );
        this.waiter = {
          seq,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
        if (this.failure !== undefined) reject(this.failure);
      });
    }
    const id = this.ids.get(seq);
    return id === '' ? undefined : id;
  }

  close(): void {
    this.request.destroy();
  }

  private block(text: string): void {
    let id = '';
    let data: string | undefined;
    for (const line of text.split('\n')) {
      const value = (field: string) => line.slice(field.length + (line[field.length] === ' ' ? 1 : 0));
      if (line.startsWith('id:')) id = value('id:').replace(/\r$/, '');
      else if (data === undefined && line.startsWith('data:')) data = value('data:').replace(/\r$/, '');
    }
    if (data === undefined) return;
    // A peer that JSON-encodes the payload sends it quoted.
    const seq = payloadSeq(data.startsWith('"') ? String(JSON.parse(data)) : data);
    if (Number.isNaN(seq)) return;
    this.ids.set(seq, id);
    if (this.waiter !== undefined && seq >= this.waiter.seq) this.waiter.resolve();
  }

  private fail(error: Error): void {
    this.failure ??= error;
  }
}
