import { connect } from '@nats-io/transport-node';

export interface CalculatorOptions {
  readonly natsUrl: string;
  /** Put before every subject, e.g. `demo.` for `demo.metrics.acme.sroi`. Default none. */
  readonly subjectPrefix?: string;
  /** How often an update is published, ms. */
  readonly everyMs: number;
}

export const DEMO_COMPANIES = ['acme', 'globex'] as const;
const METRICS = ['integration_score', 'sroi', 'volunteer_hours'] as const;
const FLAGS = ['onboarding', 'engaged', 'struggling', 'graduated'] as const;

const pick = <T>(list: readonly T[]): T => list[Math.floor(Math.random() * list.length)] as T;

/**
 * A stand-in for seed 003's analytics services: they publish on NATS, knowing nothing of Herald,
 * `metrics.<company>.<metric>` when a metric is recalculated and `journey.<company>.flag_updated`
 * when a participant's journey changes. Returns the stop function.
 */
export async function startCalculator(options: CalculatorOptions): Promise<() => Promise<void>> {
  const nc = await connect({ servers: options.natsUrl });
  const prefix = options.subjectPrefix ?? '';
  const timer = setInterval(() => {
    const companyId = pick(DEMO_COMPANIES);
    if (Math.random() < 0.75) {
      const metricName = pick(METRICS);
      const value =
        metricName === 'volunteer_hours' ? Math.round(Math.random() * 500) : Math.random().toFixed(2);
      nc.publish(
        `${prefix}metrics.${companyId}.${metricName}`,
        JSON.stringify({
          companyId,
          metricName,
          value: Number(value),
          calculatedAt: new Date().toISOString(),
        }),
      );
    } else {
      const userId = `user-${Math.floor(Math.random() * 20)}`;
      nc.publish(
        `${prefix}journey.${companyId}.flag_updated`,
        JSON.stringify({ companyId, userId, flag: pick(FLAGS) }),
      );
    }
  }, options.everyMs);
  return async () => {
    clearInterval(timer);
    await nc.drain();
  };
}
