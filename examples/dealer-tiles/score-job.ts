import type { Herald } from 'herald';

/** A vehicle in a dealer's inventory, as the MSRP sync and the score engine see it. */
export interface Vehicle {
  readonly vin: string;
  readonly dealerId: string;
  msrp: number;
  /** What comparable vehicles sell for in the dealer's market. */
  readonly marketPrice: number;
}

/** Seed 000's `ai-score` event: the AI Visibility, Trust and Competitive Intelligence indices. */
export interface AiScore {
  readonly vin: string;
  readonly dealerId: string;
  readonly reason: string;
  readonly avi: number;
  readonly ati: number;
  readonly cis: number;
  readonly ts: string;
}

/** Seed 000's `msrp` event. */
export interface MsrpChange {
  readonly vin: string;
  readonly dealerId: string;
  readonly old: number;
  readonly new: number;
  readonly deltaPct: number;
  readonly ts: string;
}

/** The events the job publishes and the page reads: `createHerald<TileEvents>()` and `createHeraldHooks<TileEvents>()` hold both ends to it. */
export type TileEvents = { 'ai-score': AiScore; msrp: MsrpChange };

export interface MsrpRecord {
  readonly vin: string;
  readonly msrp: number;
}

const clamp = (value: number) => Math.max(0, Math.min(100, Math.round(value)));

/**
 * The three indices from how far a vehicle's MSRP sits below (positive) or above its market price,
 * in percent. A stand-in for a real model, kept this simple so a test can work the numbers out by
 * hand: at market price a vehicle scores 60 / 70 / 50.
 */
export function scoresOf(vehicle: Vehicle): Pick<AiScore, 'avi' | 'ati' | 'cis'> {
  const belowMarketPct = ((vehicle.marketPrice - vehicle.msrp) / vehicle.marketPrice) * 100;
  return {
    avi: clamp(60 + belowMarketPct * 2),
    ati: clamp(70 + belowMarketPct),
    cis: clamp(50 + belowMarketPct * 3),
  };
}

/** Where a dealer's tile listens: the page subscribes to `dealers/{dealerId}`. */
export const dealerTopic = (dealerId: string) => `dealers/${dealerId}`;

/**
 * Seed 000's MSRP sync and score recompute, publishing where the seed called `bus.emit`: each
 * price that changed becomes an `msrp` event, and the vehicle's scores are recomputed and
 * published as an `ai-score` event, both on the dealer's topic, tagged with the dealer and VIN
 * so that a subscriber can narrow down to one vehicle (`tag.vin=…`).
 *
 * The key also conflates: of a vehicle's events queued together (one batch listing a VIN
 * twice), a subscriber gets the last. A price feed lists each vehicle once.
 */
export class ScoreJob {
  readonly #herald: Herald<TileEvents>;
  readonly #vehicles: Map<string, Vehicle>;

  constructor(herald: Herald<TileEvents>, inventory: readonly Vehicle[]) {
    this.#herald = herald;
    this.#vehicles = new Map(inventory.map((vehicle) => [vehicle.vin, { ...vehicle }]));
  }

  /** The dealers with vehicles, in inventory order. */
  dealers(): string[] {
    return [...new Set([...this.#vehicles.values()].map((vehicle) => vehicle.dealerId))];
  }

  vehicle(vin: string): Readonly<Vehicle> | undefined {
    return this.#vehicles.get(vin);
  }

  /**
   * Applies the records (every VIN must be in the inventory: check with `vehicle()` first) and
   * publishes the changes as one batch, so a tile never shows a price change without its
   * rescore. Resolves with how many prices changed.
   */
  async syncMsrp(records: readonly MsrpRecord[]): Promise<number> {
    const ts = new Date().toISOString();
    const events = [];
    for (const { vin, msrp } of records) {
      const vehicle = this.#vehicles.get(vin);
      if (vehicle === undefined) throw new Error(`vin ${vin} is not in the inventory`);
      if (vehicle.msrp === msrp) continue;
      const change: MsrpChange = {
        vin,
        dealerId: vehicle.dealerId,
        old: vehicle.msrp,
        new: msrp,
        deltaPct: Math.round(((msrp - vehicle.msrp) / vehicle.msrp) * 10_000) / 100,
        ts,
      };
      vehicle.msrp = msrp;
      const score: AiScore = {
        vin,
        dealerId: vehicle.dealerId,
        reason: 'MSRP_Update',
        ...scoresOf(vehicle),
        ts,
      };
      const common = { topic: dealerTopic(vehicle.dealerId), tags: { dealerId: vehicle.dealerId, vin } };
      // A key per vehicle and type: the hub keeps each vehicle's latest price change and score,
      // which a page that opens gets first (`snapshot: 'latest'`).
      events.push(
        { ...common, type: 'msrp' as const, key: `msrp:${vin}`, data: change },
        { ...common, type: 'ai-score' as const, key: `ai-score:${vin}`, data: score },
      );
    }
    if (events.length > 0) await this.#herald.publish(events);
    return events.length / 2;
  }
}

/** The demo inventory: three dealers, three vehicles each, all at market price to begin with. */
export const DEMO_INVENTORY: readonly Vehicle[] = ['STORE1', 'STORE2', 'STORE3'].flatMap((dealerId, d) =>
  [0, 1, 2].map((v) => {
    const price = 30_000 + d * 5_000 + v * 2_000;
    return { vin: `${dealerId}-VIN${v + 1}`, dealerId, msrp: price, marketPrice: price };
  }),
);
