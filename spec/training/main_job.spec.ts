/** The main job's pieces: task and packing, the PNG writer, and a short end-to-end run (train, generate, chart). */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { inflateSync } from 'node:zlib';
import { SeededRng } from '../../lib/generation/rng';
import { packBatch } from '../../train/data';
import { DEFAULTS, runExperiment } from '../../train/experiment';
import { encodePng } from '../../train/png';
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

  it('writes a valid PNG (signature, IHDR, CRC, inflatable rows)', () => {
    const rgb = new Uint8Array(4 * 3 * 3).map((_, i) => i * 7);
    const png = encodePng(4, 3, rgb);
    expect(Array.from(png.subarray(0, 8))).toEqual([137, 80, 78, 71, 13, 10, 26, 10]);
    const view = new DataView(png.buffer, png.byteOffset);
    expect([view.getUint32(16), view.getUint32(20)]).toEqual([4, 3]);
    const idatLen = view.getUint32(33);
    expect(String.fromCharCode(...png.subarray(37, 41))).toBe('IDAT');
    const raw = inflateSync(png.subarray(41, 41 + idatLen));
    expect(raw.length).toBe(3 * (1 + 12));
    expect(Array.from(raw.subarray(1, 13))).toEqual(Array.from(rgb.subarray(0, 12)));
  });

  it('runs end to end: trains, answers held-out prompts through the paged cache, writes the chart', async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'train-')), 'loss.png');
    const r = await runExperiment({ ...DEFAULTS, backend: 'wasm', steps: 30, batch: 8, hidden: 32, layers: 1, heldOut: 8, out });
    expect(r.losses.length).toBe(30);
    expect(r.losses[29]).toBeLessThan(r.losses[0]);
    expect(r.tokensPerSecond).toBeGreaterThan(0);
    expect(fs.statSync(out).size).toBeGreaterThan(1000);
  });
});
