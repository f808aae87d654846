/**
 * bin/conformance/attention_fixture.ts `runAttentionFixture`, reading outputs with `await data()`
 * instead of `dataSync()`. Needed for webgpu in browsers: tfjs-backend-webgpu's readSync copies
 * through an OffscreenCanvas, which in headless Chromium (SwiftShader) returns zeros (measured on
 * Chromium 156; without --enable-features=Vulkan it also loses the device). Same steps, same
 * layer options and the same error measure as the sync runner; the page uses that one elsewhere.
 */
import * as tf from '@tensorflow/tfjs';
import { AttentionWithRope, PagedKVCache } from '../lib/index.js';
import {
  fixtureWeights, layerArgsFromFixture, scramble, TOLERANCE,
  type AttentionFixture, type FixtureResult, type FixtureStep, type RunOptions,
} from '../bin/conformance/attention_fixture.js';

function maxAbs(a: Float32Array): number { let m = 0; for (const x of a) m = Math.max(m, Math.abs(x)); return m; }

export async function runAttentionFixtureAsync(f: AttentionFixture, opts: RunOptions = {}): Promise<FixtureResult> {
  const c = f.config;
  const steps = c.steps as FixtureStep[];
  const args = { ...layerArgsFromFixture(c, opts.pageSize ?? 16), ...opts.layerOverrides };
  if (opts.unfused) args.fuseRopeAndStore = false;
  const layer = new AttentionWithRope(args);
  layer.setHfWeights(fixtureWeights(f));
  const cache = new PagedKVCache(args.kvParams);
  if (opts.scramblePages) scramble(cache);
  const prevForce = tf.env().getBool('ATTENTION_ROPE_FORCE_COMPOSITE');
  if (opts.unfused) tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', true);
  let worst = 0;
  const details: string[] = [];
  try {
    for (const [i, s] of steps.entries()) {
      const batch = s.start_positions.length;
      const seqIds = s.seq_ids ?? Array.from({ length: batch }, (_, b) => b);
      for (const id of seqIds) if (!cache.hasSequence(id)) cache.addSequence(id);
      const counts = seqIds.map((_, b) => s.input_row_offsets[b + 1] - s.input_row_offsets[b]);
      const kv = cache.fetch(seqIds, counts);
      const input = f.tensors.get(s.input)!;
      const hidden = tf.tensor2d(input.data as Float32Array, input.shape as [number, number]); // [T, hidden]
      const offsets = tf.tensor1d(s.input_row_offsets, 'int32');                              // [batch + 1]
      if (s.materialize) {
        layer.materializeKvFromHidden(0, hidden, kv, layer.rope.freqsCis, offsets);
      } else {
        const out = layer.callRagged(0, hidden, kv, layer.rope.freqsCis, offsets);               // [T, hidden]
        const got = await out.data() as Float32Array;
        const exp = f.tensors.get(s.expected!)!.data as Float32Array;
        let diff = 0;
        for (let j = 0; j < exp.length; j++) diff = Math.max(diff, Math.abs(got[j] - exp[j]));
        const err = Number.isNaN(maxAbs(got)) ? Infinity : diff / maxAbs(exp);
        details.push(`step${i}=${err.toExponential(1)}`);
        worst = Math.max(worst, Number.isNaN(err) ? Infinity : err);
        out.dispose();
      }
      hidden.dispose(); offsets.dispose();
      cache.step(kv);
    }
  } finally {
    tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', prevForce);
    layer.dispose();
  }
  return { name: f.name, error: worst, passed: worst <= TOLERANCE, detail: details.join(' ') };
}
