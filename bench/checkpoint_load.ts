/**
 * Checkpoint loading speed: loadPretrained of a 55M-parameter BF16 checkpoint (validated headers,
 * streamed per tensor into the model's float32 weights) against a plain whole-file read of the
 * same file (fs.readFileSync, no decoding), in one process, alternating so shared load falls on
 * both sides. Also the reader alone (readTensors: validated, widened to float32, no tfjs).
 * The file sits in the page cache after the first read, so both sides measure memory bandwidth
 * and our per-byte work, not the disk.
 *
 *   node dist/bench/run.js --only checkpoint_load
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { useBackend } from '../lib/backends/select.js';
import { locateTensors, readTensors } from '../lib/loaders/checkpoint.js';
import { loadPretrained } from '../models/load.js';
import { type BenchModule, type BenchOptions, type BenchRow, row, timeInterleaved } from './harness.js';
import { writeBigCheckpoint } from './models_decode.js';

export const checkpointLoadBench: BenchModule = {
  name: 'checkpoint_load',
  async run(opts: BenchOptions): Promise<BenchRow[]> {
    await useBackend('cpu');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-load-'));
    try {
      const params = writeBigCheckpoint(dir);
      const file = path.join(dir, 'model.safetensors');
      const bytes = fs.statSync(file).size;
      const plain = () => { fs.readFileSync(file); };
      const reader = () => { for (const t of readTensors(locateTensors(dir))) void t; };
      const load = async () => { (await loadPretrained(dir)).model.dispose(); };
      const o = opts.quick ? { warmup: 1, minIters: 3, maxIters: 6, minMs: 500, maxMs: 8000, chunk: 1, skip: 0 }
        : { warmup: 1, minIters: 9, maxIters: 15, minMs: 4000, maxMs: 40000, chunk: 1, skip: 0 };
      const [plainMs, readerMs, loadMs] = await timeInterleaved([plain, reader, load], o);
      const gbs = (ms: number) => (bytes / 1e9 / (ms / 1000)).toFixed(2);
      opts.log(`checkpoint_load ${(params / 1e6).toFixed(1)}M params BF16, ${(bytes / 2 ** 20).toFixed(0)} MiB: ` +
        `plain read ${plainMs.toFixed(0)} ms (${gbs(plainMs)} GB/s), reader ${readerMs.toFixed(0)} ms (${gbs(readerMs)} GB/s), ` +
        `loadPretrained ${loadMs.toFixed(0)} ms (${gbs(loadMs)} GB/s); loadPretrained / plain read = ${(loadMs / plainMs).toFixed(2)}x`);
      return [
        row(`load ${(params / 1e6).toFixed(0)}M-param BF16 checkpoint (loadPretrained)`, 'cpu', loadMs, 'fs.readFileSync of the file', plainMs),
        row(`read ${(params / 1e6).toFixed(0)}M-param BF16 checkpoint (validated reader, float32 out)`, 'cpu', readerMs, 'fs.readFileSync of the file', plainMs),
      ];
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
};
