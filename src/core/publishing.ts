import { badRequest, HeraldError } from './errors.ts';
import { type EventDraft, type EventLimits, type HeraldEvent, validateEvent } from './event.ts';
import { type HubState, shuttingDown, tenantTotalsOf } from './hub-state.ts';
import { ALL_TENANTS, type Principal } from './principal.ts';
import { anyMatch } from './topics.ts';

/** The `ready` promises of hubs whose broker has started: awaited once, not per publish. */
const brokerStarted = new WeakSet<Promise<void>>();

/**
 * Validates, authorizes and appends events; resolves once the log has them. With `reuseIds`, a
 * chosen id already in the history names the new event instead of being refused.
 */
export async function publishEvents(
  state: HubState,
  inputs: readonly unknown[],
  principal: Principal,
  options: { readonly reuseIds?: boolean },
): Promise<HeraldEvent[]> {
  if (state.closing) throw shuttingDown();
  if (inputs.length === 0) throw badRequest('empty-batch', 'the batch is empty; send at least one event');
  if (inputs.length > state.options.maxBatch) {
    throw new HeraldError(
      413,
      'batch-too-large',
      `the batch has ${inputs.length} events; the limit is ${state.options.maxBatch}`,
    );
  }
  // Once the broker runs, waiting for it again would cost every publish a turn of the microtask queue.
  const ready = state.ready;
  if (!brokerStarted.has(ready)) {
    await ready;
    brokerStarted.add(ready);
  }
  const now = Date.now();
  const limits: EventLimits = { maxDataBytes: state.options.maxDataBytes };
  const drafts: EventDraft[] = new Array(inputs.length);
  for (let i = 0; i < inputs.length; i++) {
    const where = inputs.length > 1 ? `event ${i}: ` : '';
    const draft = validateEvent(inputs[i], principal.tenant, limits, now, where);
    authorize(draft, principal, where);
    const reused = options.reuseIds === true && draft.id !== undefined ? { ...draft, reuseId: true } : draft;
    drafts[i] = state.options.privateByDefault && !reused.private ? { ...reused, private: true } : reused;
  }
  // Matching the topics against this node's templates now, a turn's matching time at a time
  // (see `turnBudget`), makes the publisher wait for what its topics cost, rather than every
  // event fanned out after its own: fan-out then finds the lookups kept.
  for (const draft of drafts) {
    const own = state.index.prepareInTurns(draft.tenant, draft.topics);
    if (own !== undefined) await own;
    const all = state.index.prepareInTurns(ALL_TENANTS, draft.topics);
    if (all !== undefined) await all;
  }
  if (state.closing) throw shuttingDown();
  const started = performance.now();
  const events = await state.broker.append(drafts);
  state.appendLatency.observe(performance.now() - started);
  state.counters.published += events.length;
  // Per call and per tenant, not per event: a batch is nearly always one tenant's.
  let tenant = drafts[0]?.tenant;
  let count = 0;
  for (const draft of drafts) {
    if (draft.tenant !== tenant) {
      tenantTotalsOf(state, tenant as string).published += count;
      tenant = draft.tenant;
      count = 0;
    }
    count++;
  }
  if (tenant !== undefined) tenantTotalsOf(state, tenant).published += count;
  return events;
}

/** Whether `principal` may publish `draft`: into its own tenant (or any, as admin), on topics it holds a publish grant for. */
function authorize(draft: EventDraft, principal: Principal, where: string): void {
  if (draft.tenant === ALL_TENANTS) {
    throw badRequest(
      'invalid-tenant',
      `${where}tenant "${ALL_TENANTS}" is reserved for watching every tenant`,
    );
  }
  if (draft.tenant !== principal.tenant && !principal.admin) {
    throw new HeraldError(
      403,
      'tenant-forbidden',
      `${where}only admin credentials may publish into another tenant than their own`,
    );
  }
  for (const topic of draft.topics) {
    if (!anyMatch(principal.publish, [topic])) {
      throw new HeraldError(
        403,
        'publish-forbidden',
        `${where}not allowed to publish to topic "${topic}": no publish grant matches it`,
      );
    }
  }
}
