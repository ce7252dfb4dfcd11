/**
 * Summarizes a V8 CPU profile (`node --cpu-prof`, `run.ts --cpu-prof <dir>`): the functions with
 * the most self time, and the time by stage of the path an event takes through Herald, each
 * sample counted in the stage of the innermost frame that names one (so a JSON.parse called from
 * the publish route counts as JSON, a write called from the flusher as the write).
 *
 *   node bench/profile-summary.ts <file.cpuprofile> [--top 30] [--from s] [--to s]
 *
 * `--from` and `--to` keep only the samples taken that many seconds after the profile started: a
 * profile covers the server's whole life (streams opening, warmup, shutdown), and the measured
 * window is the part that compares with the bench's table.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: {
    readonly functionName: string;
    readonly url: string;
    readonly lineNumber: number;
  };
  readonly children?: readonly number[];
}

interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
  readonly startTime: number;
  readonly endTime: number;
}

/**
 * Stages, by the function or file of a frame; the first that matches, innermost frame first,
 * takes the sample. Order matters: the specific (JSON, auth) before the general (the route).
 */
const STAGES: readonly (readonly [string, (name: string, file: string) => boolean])[] = [
  ['garbage collection', (name) => name === '(garbage collector)'],
  ['idle', (name) => name === '(idle)' || name === '(program)'],
  ['auth', (_, file) => file.includes('/src/auth/')],
  ['JSON parse/shape', (name, file) => name === 'parse' || file.endsWith('/json-body.ts')],
  ['JSON stringify / encode', (name, file) => name === 'stringify' || file.endsWith('/sse.ts')],
  ['validation', (_, file) => file.endsWith('/core/event.ts') || file.includes('/core/protocol/')],
  [
    'limits',
    (_, file) =>
      file.endsWith('/limits.ts') || file.endsWith('/token-buckets.ts') || file.endsWith('/stream-counts.ts'),
  ],
  [
    'append (broker, log)',
    (_, file) => file.includes('/backends/') || file.endsWith('/core/log.ts') || file.endsWith('/latest.ts'),
  ],
  [
    'index lookup, fan-out',
    (_, file) =>
      file.endsWith('/fan-out.ts') ||
      file.endsWith('/subscriber-index.ts') ||
      file.endsWith('/tenant-index.ts') ||
      file.endsWith('/topics.ts') ||
      file.endsWith('/uri-template.ts') ||
      file.endsWith('/redaction.ts') ||
      file.endsWith('/filters.ts'),
  ],
  [
    'write (flush, sink, socket)',
    (name, file) =>
      file.endsWith('/flush.ts') ||
      file.endsWith('/outbox.ts') ||
      file.endsWith('/subscriber.ts') ||
      name === 'writev' ||
      name === 'writeBuffer' ||
      name === 'writeUtf8String' ||
      name === 'writeLatin1String' ||
      file === 'node:net' ||
      file === 'node:internal/stream_base_commons' ||
      file.startsWith('node:internal/streams/writable'),
  ],
  [
    'publish route, hub',
    (_, file) =>
      file.endsWith('/routes/publish.ts') ||
      file.endsWith('/core/publishing.ts') ||
      file.endsWith('/core/hub.ts') ||
      file.endsWith('/herald.ts'),
  ],
  [
    'Herald HTTP (router, adapter, replies)',
    (_, file) => file.includes('/src/http/') || file.includes('/src/observability/'),
  ],
  [
    'node:http (parser, response)',
    (name, file) =>
      file.startsWith('node:_http') ||
      file === 'node:http' ||
      name === 'parserOnHeadersComplete' ||
      name === 'execute',
  ],
  [
    'streams, events, timers',
    (_, file) => file.startsWith('node:internal/streams') || file === 'node:events',
  ],
  [
    'promises, ticks',
    (name, file) => file === 'node:internal/process/task_queues' || name === 'processTicksAndRejections',
  ],
];

function main(): void {
  const { values, positionals } = parseArgs({
    options: {
      top: { type: 'string', default: '30' },
      from: { type: 'string', default: '0' },
      to: { type: 'string', default: 'Infinity' },
    },
    allowPositionals: true,
  });
  const file = positionals[0];
  if (file === undefined) throw new Error('usage: node bench/profile-summary.ts <file.cpuprofile> [--top n]');
  const top = Number(values.top);
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  // Self time per node: each sample's delta goes to the node sampled.
  const self = new Map<number, number>();
  const from = Number(values.from) * 1e6;
  const to = Number(values.to) * 1e6;
  let at = 0;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (at >= from && at <= to) self.set(id, (self.get(id) ?? 0) + delta);
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const short = (url: string) => url.replace(/^file:\/\/.*?\/(src|bench|node_modules)\//, '$1/');
  const label = (node: ProfileNode) =>
    `${node.callFrame.functionName || '(anonymous)'} ${short(node.callFrame.url)}${node.callFrame.url ? `:${node.callFrame.lineNumber + 1}` : ''}`;

  const byFunction = new Map<string, number>();
  const byStage = new Map<string, number>();
  for (const [id, micros] of self) {
    const node = byId.get(id) as ProfileNode;
    byFunction.set(label(node), (byFunction.get(label(node)) ?? 0) + micros);
    let stage = 'other';
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = (byId.get(at) as ProfileNode).callFrame;
      const found = STAGES.find(([, test]) => test(frame.functionName, frame.url.replace(/^file:\/\//, '')));
      if (found !== undefined) {
        stage = found[0];
        break;
      }
    }
    byStage.set(stage, (byStage.get(stage) ?? 0) + micros);
  }
  const busy = total - (byStage.get('idle') ?? 0);
  const pct = (micros: number, of: number) => `${((100 * micros) / of).toFixed(1)} %`;
  const lines: string[] = [];
  lines.push(`Profile ${file}: ${(total / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s busy`);
  lines.push('', '| Stage | ms | of busy |', '| --- | ---: | ---: |');
  for (const [stage, micros] of [...byStage].sort((a, b) => b[1] - a[1])) {
    if (stage === 'idle') continue;
    lines.push(`| ${stage} | ${Math.round(micros / 1000)} | ${pct(micros, busy)} |`);
  }
  lines.push('', `| Top ${top} self time | ms | of busy |`, '| --- | ---: | ---: |');
  for (const [name, micros] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`| \`${name}\` | ${Math.round(micros / 1000)} | ${pct(micros, busy)} |`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

main();
