/**
 * Checkpoint loading speed (issue 11, "loading at disk speed"): a 55M-parameter BF16 checkpoint
 * (torch_dtype bfloat16) against a plain whole-file read of the same file (fs.readFileSync, no
 * decoding), in one process, alternating so shared load falls on every side:
 * - loadPretrained, float32 model: validated headers, streamed into the variables' storage,
 *   widened and transposed in place (models/load_in_place.ts, lib/loaders/read_into.ts);
 * - loadPretrained with packHalfWeights: projections kept packed (two BF16 a word), embeddings and
 *   norms widened;
 * - the reader alone (readTensors: validated, widened into a fresh float32 array per tensor, no tfjs).
 * GB/s are checkpoint bytes per second. The file sits in the page cache after the first read, so
 * every side measures memory bandwidth, page faults and per-byte work, not the disk.
 * Peak memory: each side once more in its own child process, peak RSS (getrusage maxrss) over the
 * RSS after its imports, printed next to the file's size and the model's float32 size.
 *
 *   node dist/bench/run.js --only checkpoint_load
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { useBackend } from '../lib/backends/select.js';
import { locateTensors, readTensors } from '../lib/loaders/checkpoint.js';
import { packageRoot } from '../lib/util/package_root.js';
import { loadPretrained } from '../models/load.js';
import { type BenchModule, type BenchOptions, type BenchRow, row, timeInterleaved } from './harness.js';
import { writeBigCheckpoint } from './models_decode.js';

/**
 * Peak RSS growth of `body` in a fresh process that has loaded the Node entry (the addon) first:
 * the high-water mark is reset after the imports (`5` into /proc/self/clear_refs, Linux) and read
 * from VmHWM after `body`; the baseline is the RSS at the reset.
 */
function childPeakRss(body: string): { grew: number; ms: number } {
  const dist = path.join(packageRoot, 'dist');
  const script = `
    await import(${JSON.stringify(path.join(dist, 'lib', 'node.js'))});
    const { useBackend } = await import(${JSON.stringify(path.join(dist, 'lib', 'backends', 'select.js'))});
    await useBackend('cpu');
    const fs = await import('node:fs');
    const { loadPretrained } = await import(${JSON.stringify(path.join(dist, 'models', 'load.js'))});
    const kib = (field) => parseInt(fs.readFileSync('/proc/self/status', 'utf8').split(String.fromCharCode(10)).find((l) => l.startsWith(field)).slice(field.length), 10) * 1024;
    fs.writeFileSync('/proc/self/clear_refs', '5');
    const baseline = kib('VmRSS:'), t0 = performance.now();
    const kept = await (async () => { ${body} })();
    const ms = performance.now() - t0;
    console.log(JSON.stringify({ grew: kib('VmHWM:') - baseline, ms, kept: kept ? 1 : 0 }));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: packageRoot, encoding: 'utf8', timeout: 120_000 });
  return JSON.parse(out.trim().split('\n').pop()!) as { grew: number; ms: number };
}

export const checkpointLoadBench: BenchModule = {
  name: 'checkpoint_load',
  async run(opts: BenchOptions): Promise<BenchRow[]> {
    await useBackend('cpu');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-load-'));
    try {
      const params = writeBigCheckpoint(dir);
      const cfgFile = path.join(dir, 'config.json');
      fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, 'utf8')), torch_dtype: 'bfloat16' }));
      const file = path.join(dir, 'model.safetensors');
      const bytes = fs.statSync(file).size;
      const plain = () => { fs.readFileSync(file); };
      const reader = () => { for (const t of readTensors(locateTensors(dir))) void t; };
      const load = async () => { (await loadPretrained(dir)).model.dispose(); };
      const packed = async () => { (await loadPretrained(dir, { packHalfWeights: true })).model.dispose(); };
      const o = opts.quick ? { warmup: 1, minIters: 3, maxIters: 6, minMs: 500, maxMs: 8000, chunk: 1, skip: 0 }
        : { warmup: 1, minIters: 9, maxIters: 21, minMs: 4000, maxMs: 40000, chunk: 1, skip: 0 };
      const [plainMs, loadMs, packedMs, readerMs] = await timeInterleaved([plain, load, packed, reader], o);
      const gbs = (ms: number) => `${(bytes / 1e9 / (ms / 1000)).toFixed(2)} GB/s`;
      const vs = (ms: number) => `${(ms / plainMs).toFixed(2)}x the plain read's time`;
      const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
      opts.log(`checkpoint_load ${(params / 1e6).toFixed(1)}M params BF16, ${mib(bytes)} file (${mib(4 * params)} as float32), medians of alternating runs:`);
      opts.log(`  plain read (fs.readFileSync)        ${plainMs.toFixed(0)} ms  ${gbs(plainMs)}`);
      opts.log(`  loadPretrained, float32 model       ${loadMs.toFixed(0)} ms  ${gbs(loadMs)}  ${vs(loadMs)}`);
      opts.log(`  loadPretrained, packHalfWeights     ${packedMs.toFixed(0)} ms  ${gbs(packedMs)}  ${vs(packedMs)}`);
      opts.log(`  reader (readTensors, float32 out)   ${readerMs.toFixed(0)} ms  ${gbs(readerMs)}  ${vs(readerMs)}`);
      const rss = {
        plain: childPeakRss(`return fs.readFileSync(${JSON.stringify(file)});`),
        load: childPeakRss(`return (await loadPretrained(${JSON.stringify(dir)})).model;`),
        packed: childPeakRss(`return (await loadPretrained(${JSON.stringify(dir)}, { packHalfWeights: true })).model;`),
      };
      opts.log(`  peak RSS over baseline, one load in a fresh process: plain read ${mib(rss.plain.grew)}, float32 model ${mib(rss.load.grew)} ` +
        `(the model is ${mib(4 * params)}), packHalfWeights ${mib(rss.packed.grew)}; file ${mib(bytes)}`);
      opts.log(`  first load in a fresh process: plain read ${rss.plain.ms.toFixed(0)} ms, float32 model ${rss.load.ms.toFixed(0)} ms, ` +
        `packHalfWeights ${rss.packed.ms.toFixed(0)} ms`);
      const M = (params / 1e6).toFixed(0);
      return [
        row(`load ${M}M-param BF16 checkpoint, float32 model (loadPretrained, ${gbs(loadMs)})`, 'cpu', loadMs, `fs.readFileSync (${gbs(plainMs)})`, plainMs),
        row(`load ${M}M-param BF16 checkpoint, packed (packHalfWeights, ${gbs(packedMs)})`, 'cpu', packedMs, `fs.readFileSync (${gbs(plainMs)})`, plainMs),
        row(`read ${M}M-param BF16 checkpoint (validated reader, float32 out, ${gbs(readerMs)})`, 'cpu', readerMs, `fs.readFileSync (${gbs(plainMs)})`, plainMs),
      ];
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
};
