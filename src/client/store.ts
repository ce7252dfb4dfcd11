/**
 * Where the client keeps the last event id it handled, so that a new client (a page reload, a
 * remounted provider) resumes from it. Synchronous on purpose: it is written on every event.
 */
export interface LastEventIdStore {
  get(key: string): string | null | undefined;
  set(key: string, id: string): void;
}

/** A store in memory, for this process only. */
export function memoryStore(): LastEventIdStore {
  const ids = new Map<string, string>();
  return { get: (key) => ids.get(key), set: (key, id) => void ids.set(key, id) };
}

// Shared by every client of this page or process that uses the default store, as sessionStorage
// would be: a client created again with the same options resumes where the last one stopped.
const shared = memoryStore();

/**
 * `sessionStorage` where there is one that works (a browser tab: it survives a reload, and each tab
 * resumes on its own), the process-wide memory store otherwise (Node, or storage disabled).
 */
export function defaultStore(): LastEventIdStore {
  try {
    const storage = globalThis.sessionStorage;
    // Reading it throws where storage is blocked (sandboxed frames, some privacy modes).
    storage.getItem('herald');
    return { get: (key) => storage.getItem(key), set: (key, id) => storage.setItem(key, id) };
  } catch {
    return shared;
  }
}
