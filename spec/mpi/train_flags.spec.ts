/**
 * The main job's data-parallel flags and batch split without launching MPI: `--accumulate`,
 * `--lora`, `--save` parsing and their errors; `stepShares` splitting a global batch into
 * contiguous shares whose loss scales add up to 1; `addGradients`.
 */
import * as tf from '@tensorflow/tfjs';
import { SeededRng } from '../../lib/generation/rng';
import { lossRows, sampleExamples } from '../../train/data';
import { SINGLE_RUN, addGradients, stepShares, takeRunFlags } from '../../train/data_parallel';
import { DEFAULT_TASK } from '../../train/task';

describe('main job run flags', () => {
  it('takes --accumulate, --lora and --save out of argv and leaves the rest', () => {
    const { argv, run } = takeRunFlags(['--steps', '5', '--accumulate', '3', '--lora=4', '--save', 'out/x', '--seed', '1']);
    expect(argv).toEqual(['--steps', '5', '--seed', '1']);
    expect(run).toEqual({ dp: null, save: 'out/x', accumulate: 3, lora: 4 });
  });

  it('rejects bad values naming the flag and the value', () => {
    expect(() => takeRunFlags(['--accumulate', '0'])).toThrow("[train] --accumulate must be an integer >= 1, got '0'");
    expect(() => takeRunFlags(['--lora', '2.5'])).toThrow("[train] --lora must be an integer >= 1, got '2.5'");
    expect(() => takeRunFlags(['--save'])).toThrow("[train] flag --save needs a directory, got ''");
    expect(() => takeRunFlags(['--save', '--steps'])).toThrow("[train] flag --save needs a directory, got '--steps'");
    expect(() => takeRunFlags(['--data-parallel', '--accumulate', '2'])).toThrow(
      '[train] --accumulate (2) is for a single process; with --data-parallel the ranks split the batch');
  });
});

describe('stepShares', () => {
  const ex = sampleExamples(new SeededRng(5), DEFAULT_TASK, 11, new Set());

  it('alone: the whole batch, scale 1', () => {
    const [s, ...rest] = stepShares(SINGLE_RUN, ex);
    expect(rest).toEqual([]);
    expect([s.examples, s.lossScale, s.rows]).toEqual([ex, 1, lossRows(ex)]);
  });

  it('--accumulate K: K contiguous shares (remainder first), loss scales summing to 1', () => {
    const shares = stepShares({ ...SINGLE_RUN, accumulate: 3 }, ex);
    expect(shares.map((s) => s.examples.length)).toEqual([4, 4, 3]);
    expect(shares.flatMap((s) => s.examples)).toEqual(ex);
    expect(shares.reduce((a, s) => a + s.lossScale, 0)).toBeCloseTo(1, 12);
    expect(shares.map((s) => s.rows)).toEqual(shares.map((s) => lossRows(s.examples)));
    expect(() => stepShares({ ...SINGLE_RUN, accumulate: 12 }, ex)).toThrow('[train] --batch (11) must be >= --accumulate (12)');
  });

  it('addGradients sums key by key and disposes its inputs', () => {
    const a = { w: tf.tensor1d([1, 2]) }, b = { w: tf.tensor1d([3, 4]) };
    const c = addGradients(a, b);
    expect(Array.from(c.w.dataSync())).toEqual([4, 6]);
    expect([a.w.isDisposed, b.w.isDisposed]).toEqual([true, true]);
    c.w.dispose();
  });
});
