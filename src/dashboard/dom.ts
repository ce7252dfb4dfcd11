/**
 * The page's small DOM and formatting helpers, shared by its cards: plain DOM, no UI library.
 * Every text goes in with `textContent` (never HTML), so tenant, topic and event data from the
 * hub cannot inject markup into the operator's page.
 */

export const $ = <T extends Element = HTMLElement>(selector: string) => document.querySelector(selector) as T;

/** An input's trimmed value. */
export const inputText = (selector: string): string => $<HTMLInputElement>(selector).value.trim();

export function cell(text: string, className?: string): HTMLTableCellElement {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

/**
 * A name (tenant, topic, node, subject): its full text in `title`, and it may wrap after each `/`
 * on a narrow screen (`.name` cells wrap anywhere too, for names without a `/`).
 */
export function nameCell(text: string): HTMLTableCellElement {
  const td = document.createElement('td');
  td.className = 'name';
  td.title = text;
  td.append(...text.split(/(?<=\/)/).flatMap((part) => [part, document.createElement('wbr')]));
  td.lastChild?.remove();
  return td;
}

/** A tenant as the page names it: the default tenant (`""`) has no name of its own. */
export const tenantLabel = (tenant: string): string => (tenant === '' ? '(default)' : tenant);

export function fillList(list: string, entries: readonly (readonly [string, string, string?])[]): void {
  const items = entries.flatMap(([term, value, mood]) => {
    const dt = document.createElement('dt');
    dt.textContent = term;
    const dd = document.createElement('dd');
    dd.textContent = value;
    if (mood) dd.className = mood;
    return [dt, dd];
  });
  $(list).replaceChildren(...items);
}

/** Shows the outcome of an action in its card's `output`: `data-status` is the HTTP status (0: no answer). */
export function report(output: string, status: number, text: string): void {
  const element = $(output);
  element.dataset.status = String(status);
  element.textContent = text;
  element.classList.toggle('bad', status === 0 || status >= 400);
}

export function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function bytes(n: number): string {
  return n < 1024
    ? `${n} B`
    : n < 1048576
      ? `${(n / 1024).toFixed(1)} KiB`
      : `${(n / 1048576).toFixed(1)} MiB`;
}

/** A count with thousands grouped, as an operator reads it. */
export const count = (n: number): string => n.toLocaleString('en-US');

/** A rate, one decimal below 10/s, whole above. */
export const rate = (n: number): string => (n < 10 ? n.toFixed(1) : String(Math.round(n)));
