/**
 * MPI benchmarks (`npm run bench -- --only mpi`), each side launched under mpirun by this module,
 * the sides alternating (1 rank, 2 ranks, 1 rank, ...) so the machine's load falls on both:
 * - allreduce of 4-256 MB float32 buffers between 2 local ranks (Open MPI, shared memory), beside
 *   a plain memory copy of the same buffer on the same rank: ours = allreduce, peer = copy,
 *   ratio = copy ms / allreduce ms; GB/s (bytes of the buffer / time) logged;
 * - a data-parallel training step of the main job's model (batch 64): ours = 2 ranks (32
 *   sequences each, one allreduce of the gradients), peer = 1 rank (all 64); the shares of the
 *   2-rank step spent in the allreduce and in waiting for the slower rank (a barrier before it) logged. Every rank runs 1 native thread (TFJS_ATTENTION_THREADS=1).
 * Skipped with a note where mpirun or the MPI binding is missing.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mpiUnavailable } from '../lib/mpi/binding.js';
import { type BenchModule, type BenchOptions, type BenchRow, row } from './harness.js';

const RANK_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'mpi_rank.js');

function launch(np: number, args: string[]): Record<string, unknown> {
  const r = spawnSync('mpirun', ['--allow-run-as-root', '--oversubscribe', '-np', String(np), process.execPath, RANK_SCRIPT, ...args], {
    encoding: 'utf8', env: { ...process.env, TFJS_ATTENTION_THREADS: '1' }, timeout: 600000, maxBuffer: 1 << 24,
  });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('MPI_BENCH '));
  if (!line) throw new Error(`[bench mpi] mpirun -np ${np} ${args.join(' ')} failed (exit ${r.status}): ${(r.stderr ?? '').slice(-1500)}`);
  return JSON.parse(line.slice('MPI_BENCH '.length));
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };

export const mpiBench: BenchModule = {
  name: 'mpi',
  async run(opts: BenchOptions): Promise<BenchRow[]> {
    const why = mpiUnavailable();
    const which = spawnSync('mpirun', ['--version']);
    if (why || which.error) { opts.log(`skip: ${why ?? 'mpirun not found (apt-get install openmpi-bin libopenmpi-dev)'}`); return []; }
    const rows: BenchRow[] = [];
    const sizes = opts.quick ? [4, 16] : [4, 16, 64, 256];
    const ar = launch(2, ['allreduce', sizes.join(','), opts.quick ? '3' : '7']) as { rows: { mb: number; allreduceMs: number; copyMs: number }[] };
    for (const r of ar.rows) {
      const gbs = (ms: number) => ((r.mb * 1024 * 1024) / (ms / 1000) / 1e9).toFixed(2);
      opts.log(`allreduce ${r.mb} MB, 2 ranks: ${r.allreduceMs.toFixed(1)} ms = ${gbs(r.allreduceMs)} GB/s; memory copy ${r.copyMs.toFixed(1)} ms = ${gbs(r.copyMs)} GB/s`);
      rows.push(row(`mpi allreduce ${r.mb} MB, 2 local ranks`, 'mpi', r.allreduceMs, 'memory copy', r.copyMs));
    }
    const steps = opts.quick ? '4' : '10', rounds = opts.quick ? 1 : 3;
    const one: number[] = [], two: number[] = [], share: number[] = [], waitShare: number[] = [];
    for (let i = 0; i < rounds; i++) { // alternating launches
      one.push((launch(1, ['train', steps]) as { stepMs: number }).stepMs);
      const t = launch(2, ['train', steps]) as { stepMs: number; allreduceMs: number; waitMs: number; floats: number };
      two.push(t.stepMs);
      share.push(t.allreduceMs / t.stepMs);
      waitShare.push(t.waitMs / t.stepMs);
      opts.log(`round ${i + 1}: 1 rank ${one[i].toFixed(0)} ms/step; 2 ranks ${t.stepMs.toFixed(0)} ms/step, of which waiting for the slower rank ${t.waitMs.toFixed(1)} ms `
        + `(${(100 * t.waitMs / t.stepMs).toFixed(1)}%) and the allreduce of ${t.floats} floats ${t.allreduceMs.toFixed(1)} ms (${(100 * t.allreduceMs / t.stepMs).toFixed(1)}%)`);
    }
    opts.log(`data-parallel step, main job model, batch 64: allreduce ${(100 * median(share)).toFixed(1)}% of the 2-rank step, waiting for the slower rank ${(100 * median(waitShare)).toFixed(1)}% `
      + `(medians of ${rounds}); 2 cores shared, so no speedup is expected`);
    rows.push(row('mpi data-parallel train step, 2 ranks vs 1 (batch 64)', 'cpu', median(two), '1 rank', median(one)));
    return rows;
  },
};
