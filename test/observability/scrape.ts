import assert from 'node:assert/strict';
import parsePrometheusTextFormat, { type ParsedFamily } from 'parse-prometheus-text-format';

/** `/metrics` read through an independent parser of the Prometheus text format. */
export class Scrape {
  readonly families: ParsedFamily[];
  readonly text: string;

  constructor(text: string) {
    this.text = text;
    this.families = parsePrometheusTextFormat(text);
  }

  family(name: string): ParsedFamily {
    const family = this.families.find((candidate) => candidate.name === name);
    assert.ok(family, `/metrics has ${name}`);
    return family;
  }

  /** The value of the series of `name` with exactly these labels (besides any default labels). */
  value(name: string, labels: Record<string, string> = {}): number {
    const family = this.family(name);
    const sample = family.metrics.find((metric) =>
      Object.entries(labels).every(([key, value]) => metric.labels?.[key] === value),
    );
    if (sample === undefined) return 0;
    return Number(sample.value);
  }

  /** How many observations a histogram holds. */
  histogramCount(name: string): number {
    const family = this.family(name);
    assert.equal(family.type, 'HISTOGRAM');
    return Number(family.metrics[0]?.count);
  }
}

export async function scrape(url: string, headers: Record<string, string> = {}): Promise<Scrape> {
  const response = await fetch(`${url}/metrics`, { headers });
  const text = await response.text();
  assert.equal(response.status, 200, text);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return new Scrape(text);
}
