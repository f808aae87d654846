/**
 * `npm run bench`: runs every bench module in one process, prints a table of medians and ratios
 * (ratio = peer_ms / ours_ms; above 1 means we are faster).
 *
 *   node dist/bench/run.js [--json FILE] [--only REGEX] [--quick]
 *
 * --json FILE writes `{"rows": [{"name", "backend", "ours_ms", "peer", "peer_ms", "ratio"}]}`.
 *
 * Adding a module: write `bench/<thing>.ts` exporting a `BenchModule` (bench/harness.ts: a name and
 * `run(opts) => Promise<BenchRow[]>`; time with `timeMs`, build rows with `row`), then add it to
 * BENCH_MODULES below, or call `addBenchModule(m)` and `runBenches()` from your own script.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';

import '../lib/backends/node_install.js';  // the native CPU kernels and Dawn WebGPU (Node)
import { attentionCpuBench } from './attention_cpu.js';
import { attentionCpuKvBench } from './attention_cpu_kv.js';
import { checkpointLoadBench } from './checkpoint_load.js';
import { type BenchModule, type BenchRow, formatTable } from './harness.js';
import { modelsDecodeBench } from './models_decode.js';
import { mpiBench } from './mpi.js';
import { quantBench } from './quant.js';
import { modelsLlamaCppBench } from './models_llamacpp.js';
import { shardingBench } from './sharding.js';
import { pipelineBench } from './pipeline.js';
import { trainingStepBench } from './training_step.js';
import { wasmSimdBench } from './wasm_simd.js';
import { wasmThreadsBench } from './wasm_threads.js';

export type { BenchModule, BenchOptions, BenchRow } from './harness.js';
export { formatTable, row, timeMs } from './harness.js';

/** Modules with `optIn` (minutes long, need a peer installed) run only when `--only` names them. */
export const BENCH_MODULES: (BenchModule & { optIn?: boolean })[] = [attentionCpuBench, attentionCpuKvBench, modelsDecodeBench, checkpointLoadBench, trainingStepBench, shardingBench, pipelineBench, mpiBench, quantBench, modelsLlamaCppBench, wasmSimdBench, wasmThreadsBench];

export function addBenchModule(m: BenchModule): void {
  if (!BENCH_MODULES.some((x) => x.name === m.name)) BENCH_MODULES.push(m);
}

export async function runBenches(opts: { only?: RegExp; quick?: boolean; json?: string } = {}): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const m of BENCH_MODULES) {
    if (opts.only && !opts.only.test(m.name)) continue;
    if (m.optIn && !opts.only) continue;
    console.log(`# ${m.name}`);
    rows.push(...(await m.run({ quick: opts.quick ?? false, log: (s) => console.log(s) })));
  }
  console.log(`\n${formatTable(rows)}`);
  if (opts.json) {
    mkdirSync(dirname(opts.json), { recursive: true });
    writeFileSync(opts.json, `${JSON.stringify({ rows }, null, 2)}\n`);
  }
  return rows;
}

function parseArgs(argv: string[]): { only?: RegExp; quick: boolean; json?: string } {
  const o: { only?: RegExp; quick: boolean; json?: string } = { quick: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--json') o.json = argv[++i];
    else if (argv[i] === '--only') o.only = new RegExp(argv[++i]);
    else if (argv[i] === '--quick') o.quick = true;
    else throw new Error(`[bench] unknown argument '${argv[i]}' (use --json FILE, --only REGEX, --quick)`);
  }
  return o;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runBenches(parseArgs(process.argv.slice(2))).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
