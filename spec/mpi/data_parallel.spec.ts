/**
 * Data-parallel fine-tuning of the main job's model (train/main.ts, llama 2 layers hidden 64) on 2
 * MPI ranks for 50 steps equals single-process training on the same global batches: loss curve
 * and final weights within 1e-5 relative of the single process run with `--accumulate 2` (the same
 * global batch per step, its gradient summed from the same two halves); the plain single process
 * run (one batch per step) is equal for the first steps, then float rounding, which Adam
 * amplifies, separates them (printed, bounded at 1e-3 for the loss curve). Rank 0
 * alone saves; with `--lora` only the adapters' gradients cross the wire.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readSafetensors } from '../../lib/loaders/safetensors';
import { bundle, mpirun, mpiSkipReason, node } from './mpi_support';

const skip = mpiSkipReason();
const maybe = skip ? it.skip : it;
if (skip) console.log(`skip spec/mpi/data_parallel: ${skip}`);

const JOB = ['--steps', '50', '--batch', '8', '--eval', '1', '--backend', 'cpu'];

interface Saved { losses: number[]; accs: number[]; ranks: number; weights: Map<string, Float32Array> }

function load(dir: string): Saved {
  const j = JSON.parse(fs.readFileSync(path.join(dir, 'losses.json'), 'utf8'));
  const t = readSafetensors(new Uint8Array(fs.readFileSync(path.join(dir, 'model.safetensors'))));
  return { ...j, weights: new Map([...t].map(([k, v]) => [k, v.data as Float32Array])) };
}

/** max over steps of |a - b| / |a|. */
const curveRel = (a: number[], b: number[]) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]) / Math.abs(x)), 0);

/** max over tensors of max |a - b| / max |a|. */
function weightsRel(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let worst = 0;
  for (const [k, x] of a) {
    const y = b.get(k)!;
    let d = 0, m = 0;
    for (let i = 0; i < x.length; i++) { d = Math.max(d, Math.abs(x[i] - y[i])); m = Math.max(m, Math.abs(x[i])); }
    worst = Math.max(worst, d / m);
  }
  return worst;
}

describe('data-parallel fine-tuning over MPI (2 ranks)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dp-'));
  const dir = (n: string) => path.join(tmp, n);

  maybe('50 steps of the main job equal one process on the same global batches; rank 0 alone saves', async () => {
    const main = await bundle('train/main.ts');
    const [dp, acc] = [await mpirun(2, main, [...JOB, '--data-parallel', '--save', dir('dp'), '--out', dir('dp.png')], { limitMs: 120000 }),
      await node(main, [...JOB, '--accumulate', '2', '--save', dir('acc'), '--out', dir('acc.png')], { limitMs: 120000 })];
    for (const j of [dp, acc]) expect(j.stderr).not.toMatch(/Error|\[train\]/);
    expect(dp.stdout).toMatch(/data parallel: 2 MPI ranks, each global batch split by examples; one allreduce of 75847 floats per step/);
    expect(dp.stdout).toMatch(/data parallel: weights identical on all 2 ranks \(checked\)/);
    expect(dp.stdout.match(/^saved: /gm)).toHaveLength(1); // rank 0 only (the others print nothing)
    expect(dp.stdout.match(/^trained 50 steps/gm)).toHaveLength(1);
    const a = load(dir('dp')), b = load(dir('acc'));
    expect([a.ranks, b.ranks, a.losses.length, b.losses.length]).toEqual([2, 1, 50, 50]);
    expect(a.losses[49]).toBeLessThan(a.losses[0]);
    expect(curveRel(b.losses, a.losses)).toBeLessThanOrEqual(1e-5);
    expect(weightsRel(b.weights, a.weights)).toBeLessThanOrEqual(1e-5);
    expect(a.weights.size).toBe(b.weights.size);
    // The plain single process (one 16-example batch per step) differs only in how float sums
    // round; equal for the first steps, then Adam's normalization amplifies the rounding.
    const plain = await node(main, [...JOB, '--save', dir('plain'), '--out', dir('plain.png')], { limitMs: 120000 });
    expect(plain.stderr).not.toMatch(/Error|\[train\]/);
    const c = load(dir('plain'));
    const first = curveRel(c.losses.slice(0, 3), a.losses.slice(0, 3)), curve = curveRel(c.losses, a.losses), w = weightsRel(c.weights, a.weights);
    console.log(`data parallel (2 ranks) vs --accumulate 2: loss ${curveRel(b.losses, a.losses).toExponential(1)}, weights ${weightsRel(b.weights, a.weights).toExponential(1)}; `
      + `vs the plain single process: first 3 steps ${first.toExponential(1)}, 50-step curve ${curve.toExponential(1)}, weights ${w.toExponential(1)}`);
    expect(first).toBeLessThanOrEqual(1e-6);
    expect(curve).toBeLessThanOrEqual(1e-3);
  }, 240000);

  maybe('with --lora only the adapters\' gradients cross the wire; weights stay identical', async () => {
    const main = await bundle('train/main.ts');
    const j = await mpirun(2, main, ['--steps', '5', '--batch', '8', '--eval', '1', '--backend', 'cpu', '--lora', '4', '--data-parallel', '--out', dir('lora.png')], { limitMs: 60000 });
    expect(j.stderr).not.toMatch(/Error|\[train\]/);
    // q and v adapters of 2 blocks: A [64, 4] + B [4, 64] (q: 4 heads x 16) and A [64, 4] + B [4, 32] (v: 2 KV heads x 16),
    // plus 3 extras (loss, hits, rows) and 4 of the layout check.
    const adapters = 2 * ((64 * 4 + 4 * 64) + (64 * 4 + 4 * 32));
    expect(j.stdout).toContain(`${adapters} parameters`); // the trainable ones: every base weight frozen
    expect(j.stdout).toContain(`one allreduce of ${adapters + 7} floats per step`);
    expect(j.stdout).toMatch(/data parallel: weights identical on all 2 ranks \(checked\)/);
  }, 120000);
});
