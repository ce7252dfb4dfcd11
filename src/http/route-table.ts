import type { HttpContext } from './context.ts';
import type { HttpReply, HttpRequest } from './request.ts';

export type Handler = (context: HttpContext, request: HttpRequest) => Promise<HttpReply>;

/**
 * One method on one path, as a part of Herald (its API, Mercure, the dashboard, the metrics)
 * hands it to the router: the router knows the table, not the parts.
 */
export interface RouteEntry {
  readonly method: string;
  readonly path: string;
  readonly handle: Handler;
  /** Also every path below `path` (`path/…`): an API whose URLs name what they list. */
  readonly below?: boolean;
  /**
   * A HEAD is answered as this GET without its body, unless false: a HEAD that opened an event
   * stream would hold a slot for a response that never reads it.
   */
  readonly head?: boolean;
}

/** A path's handlers by method, in the order they were added (the order `Allow` lists them). */
export interface Route {
  readonly handlers: Readonly<Record<string, Handler>>;
  /** Whether a HEAD is answered by the GET handler. */
  readonly head: boolean;
}

interface MutableRoute {
  handlers: Record<string, Handler>;
  head: boolean;
}

/** The routes Herald serves, by path: exact paths first, then the paths that take what is below them. */
export class RouteTable {
  private readonly exact = new Map<string, MutableRoute>();
  private readonly below = new Map<string, MutableRoute>();

  constructor(entries: readonly RouteEntry[] = []) {
    this.add(entries);
  }

  add(entries: readonly RouteEntry[]): this {
    for (const entry of entries) {
      const table = entry.below === true ? this.below : this.exact;
      let route = table.get(entry.path);
      if (route === undefined) {
        route = { handlers: {}, head: true };
        table.set(entry.path, route);
      }
      if (entry.method in route.handlers) {
        throw new Error(`herald: two handlers for ${entry.method} ${entry.path}`);
      }
      route.handlers[entry.method] = entry.handle;
      if (entry.head === false) route.head = false;
    }
    return this;
  }

  /** The route of `path`, or undefined when no part of Herald serves it. */
  find(path: string): Route | undefined {
    const exact = this.exact.get(path);
    if (exact !== undefined) return exact;
    for (const [prefix, route] of this.below) {
      if (path === prefix || path.startsWith(`${prefix}/`)) return route;
    }
    return undefined;
  }

  /** Every path served, for the 404 that lists them. */
  paths(): string[] {
    return [...this.exact.keys(), ...this.below.keys()];
  }
}
