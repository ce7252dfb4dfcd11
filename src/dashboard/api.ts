/**
 * The page's calls to the hub's admin API (`/v1/nodes`, `/v1/connections`, `/v1/presence`,
 * `/v1/history`), with the credential the operator gave the page: a bearer token, or none (open
 * mode, or the `herald_token` cookie, which a same-origin fetch sends by itself).
 */

/** The hub's root: the page is served at `<root>dashboard`. */
export const root = new URL('./', location.href).href;

let token = '';

/** The admin token every call sends from now on (`''`: none). */
export function setToken(next: string): void {
  token = next;
}

export const authorization = (): Record<string, string> =>
  token ? { authorization: `Bearer ${token}` } : {};

/** An answer: the status (0 when the hub could not be reached), the JSON body, and a line saying what went wrong. */
export interface ApiAnswer<T> {
  readonly ok: boolean;
  readonly status: number;
  readonly body: T | undefined;
  /** For a refusal: `<status> <code>: <detail>` from the problem+json; for no answer, why. */
  readonly problem: string;
}

export async function api<T>(
  path: string,
  query: Record<string, string | undefined> = {},
  post?: unknown,
): Promise<ApiAnswer<T>> {
  const url = new URL(path, root);
  for (const [name, value] of Object.entries(query))
    if (value !== undefined) url.searchParams.set(name, value);
  let response: Response;
  try {
    response = await fetch(url, {
      method: post === undefined ? 'GET' : 'POST',
      headers: { ...authorization(), ...(post === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(post === undefined ? {} : { body: JSON.stringify(post) }),
    });
  } catch (error) {
    return { ok: false, status: 0, body: undefined, problem: `no answer: ${String(error)}` };
  }
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    body = undefined;
  }
  if (response.ok) return { ok: true, status: response.status, body: body as T, problem: '' };
  const problem = (body ?? {}) as { code?: string; detail?: string; title?: string };
  return {
    ok: false,
    status: response.status,
    body: undefined,
    problem: `${response.status} ${problem.code ?? ''}: ${problem.detail ?? problem.title ?? response.statusText}`,
  };
}
