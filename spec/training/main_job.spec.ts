/** The main job's pieces: task and packing, and a short end-to-end run (train, held-out loss, generate, chart). */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SeededRng } from '../../lib/generation/rng';
import { packBatch } from '../../train/data';
import { DEFAULTS, runExperiment } from '../../train/experiment';
import { BOS, EOS, SEP, DEFAULT_TASK, makeExample } from '../../train/task';

describe('main job', () => {
  it('examples reverse the letters; packing puts targets and loss weights on the answer only', () => {
    const rng = new SeededRng(3);
    const e = makeExample(rng, DEFAULT_TASK);
    const letters = e.prompt.slice(1, -1);
    expect(e.prompt[0]).toBe(BOS);
    expect(e.prompt[e.prompt.length - 1]).toBe(SEP);
    expect(e.answer).toEqual([...letters].reverse().concat(EOS));
    const b = packBatch([e, e]);
    const n = e.prompt.length + e.answer.length - 1;
    expect(Array.from(b.rowOffsets)).toEqual([0, n, 2 * n]);
    expect(Array.from(b.weights.subarray(0, n))).toEqual(Array.from({ length: n }, (_, i) => (i + 1 >= e.prompt.length ? 1 : 0)));
    expect(Array.from(b.targets.subarray(e.prompt.length - 1, n))).toEqual(e.answer);
  });

  it('runs end to end: trains, answers held-out prompts through the paged cache, writes the chart', async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'train-')), 'loss.png');
    const r = await runExperiment({ ...DEFAULTS, backend: 'wasm', steps: 30, batch: 8, hidden: 32, layers: 1, heldOut: 8, out });
    expect(r.losses.length).toBe(30);
    expect(r.losses[29]).toBeLessThan(r.losses[0]);
    expect(r.tokensPerSecond).toBeGreaterThan(0);
    expect(r.heldOut.map((h) => h.step)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1)); // 30 steps: held-out loss every step
    expect(r.heldOut[r.heldOut.length - 1].loss).toBeLessThan(r.heldOut[0].loss);
    expect(r.chart).toEqual({ png: out, svg: out.replace(/\.png$/, '.svg') });
    expect(Array.from(fs.readFileSync(out).subarray(0, 4))).toEqual([137, 80, 78, 71]);
    expect(fs.readFileSync(r.chart!.svg, 'utf8')).toContain(`held-out exact match ${(100 * r.exactMatch).toFixed(1)}%`);
  });
});
