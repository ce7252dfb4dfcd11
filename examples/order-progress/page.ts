/**
 * A merchant's purchase orders, each with a live progress bar (seed 002's RealTimeFeedback). The
 * stream is authenticated by the session cookie (Herald reads `herald_token`), whose tenant is the
 * merchant: the page asks for every purchase order, and gets only its merchant's, starting with
 * the latest event of each.
 */
import { createClient } from 'herald/client';

interface OrderEvent {
  readonly poId: string;
  readonly stage?: string;
  readonly message?: string;
  readonly progress?: number;
  readonly lineItems?: number;
  readonly confidence?: number;
  readonly error?: string;
}

type Events = Record<'stage' | 'progress' | 'completion' | 'error', OrderEvent>;

const root = document.getElementById('root') as HTMLElement;

/** A new element with these properties set (`textContent`, `className`, `hidden`…). */
function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Readonly<Record<string, unknown>> = {},
): HTMLElementTagNameMap[K] {
  return Object.assign(document.createElement(tag), props);
}

interface OrderView {
  readonly card: HTMLElement;
  readonly title: HTMLElement;
  readonly fill: HTMLElement;
  readonly percent: HTMLElement;
  readonly message: HTMLElement;
}

async function main(): Promise<void> {
  const me = await fetch('/api/me');
  if (!me.ok) {
    const { detail } = (await me.json()) as { detail: string };
    root.append(element('p', { textContent: `Signed out: ${detail}` }));
    return;
  }
  const { merchantId } = (await me.json()) as { merchantId: string };

  const status = element('span', { className: 'status', textContent: 'connecting' });
  const header = element('header');
  header.append(element('h1', { textContent: `Purchase orders of ${merchantId}` }), status);
  const fileName = element('input', {
    name: 'fileName',
    placeholder: 'supplier-invoice.pdf',
    required: true,
  });
  const form = element('form');
  form.append(fileName, element('button', { type: 'submit', textContent: 'Upload purchase order' }));
  const list = element('section', { className: 'orders' });
  root.append(header, form, list);

  const orders = new Map<string, OrderView>();
  const view = (poId: string, name?: string): OrderView => {
    let order = orders.get(poId);
    if (order === undefined) {
      const card = element('article', { className: 'order' });
      card.dataset.po = poId;
      card.dataset.state = 'queued';
      const heading = element('h2');
      const percent = element('span', { className: 'percent', textContent: '0 %' });
      const title = element('span', { textContent: poId });
      heading.append(title, percent);
      const bar = element('div', { className: 'bar' });
      const fill = element('div');
      fill.style.width = '0%';
      bar.append(fill);
      const message = element('p', { className: 'message', textContent: 'Queued' });
      card.append(heading, bar, message);
      list.prepend(card);
      order = { card, title, fill, percent, message };
      orders.set(poId, order);
    }
    // The worker may be quicker than the upload's response: the card can exist before its name.
    if (name !== undefined) order.title.textContent = `${poId} · ${name}`;
    return order;
  };
  const show = (poId: string, state: string, progress: number | undefined, message: string) => {
    const order = view(poId);
    order.card.dataset.state = state;
    if (progress !== undefined) {
      order.card.dataset.progress = String(progress);
      order.fill.style.width = `${progress}%`;
      order.percent.textContent = `${progress} %`;
    }
    order.message.textContent = message;
  };

  const client = createClient<Events>({
    url: '/realtime',
    topics: ['purchase-orders/{poId}'],
    types: ['stage', 'progress', 'completion', 'error'],
    // Each order's latest event first (the bridge keys events by order), then live: an order
    // halfway through shows where it is on first load and after a reload.
    snapshot: 'latest',
  });
  client.onStatus(({ status: now, reason }) => {
    status.dataset.status = now;
    status.textContent = reason ? `${now}: ${reason}` : now;
  });
  client.on('stage', ({ data }) => show(data.poId, 'processing', 0, data.message ?? data.stage ?? ''));
  client.on('progress', ({ data }) => show(data.poId, 'processing', data.progress, data.message ?? ''));
  client.on('completion', ({ data }) =>
    show(data.poId, 'completed', 100, `Done: ${data.lineItems} line items (confidence ${data.confidence})`),
  );
  client.on('error', ({ data }) => show(data.poId, 'failed', undefined, `Failed: ${data.error}`));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const response = await fetch('/api/purchase-orders', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ fileName: fileName.value }),
    });
    const body = (await response.json()) as { poId?: string; detail?: string };
    if (body.poId === undefined) {
      status.textContent = body.detail ?? 'upload refused';
      return;
    }
    view(body.poId, fileName.value);
    fileName.value = '';
  });
}

void main();
