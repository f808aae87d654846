/**
 * Causality with non-finite inputs: a NaN or Inf in a later token of a sequence must leave every
 * earlier token's output bit-for-bit as in a clean run, on every backend (SPEC_BACKENDS) and
 * path: the fused kernels (native addon and TypeScript on cpu, the same on wasm's heap, WGSL on
 * webgpu), their prefill and decode variants, the composite references, the padded layer path,
 * and the training attention (fused and composite, forward and dQ).
 */
import * as tf from '@tensorflow/tfjs';
import { FlashAttentionRaggedPaged } from '../../kernels/kernel_names';
import { setCpuKernelImpl, nativeKernels } from '../../kernels/cpu/native';
import { flashAttentionRaggedPagedReference } from '../../kernels/reference/FlashAttentionRaggedPaged';
import { flashAttentionRagged } from '../../kernels/train_ops';
import type { MaskSpec } from '../../lib/types';
import { describeEachBackend } from '../support/backends';
import { randomArray as seeded, rows, smallLayer } from '../support/random_layer';
import { makeCollection, randomArray, rng } from '../kernels/cpu_fixture';

const MASKS: MaskSpec[] = [
  { variant: 'causal', window: 0, chunk: 0 },
  { variant: 'sliding_window_causal', window: 5, chunk: 0 },
  { variant: 'chunked_causal', window: 0, chunk: 4 },
];
const POISONS = [NaN, Infinity, -Infinity];

/**
 * Rows [0, upto) of `a` and `b` (width w) are equal (bitwise, or within `tol` relative where a
 * kernel takes another loop order for items with non-finite inputs), and row `bad` of `a` is not all finite.
 */
function expectCausal(a: Float32Array, b: Float32Array, w: number, upto: number, bad: number | null, what: string, tol = 0): void {
  for (let i = 0; i < upto * w; i++) {
    const same = tol === 0 ? Object.is(a[i], b[i]) : Number.isFinite(a[i]) && Math.abs(a[i] - b[i]) <= tol * Math.max(1, Math.abs(b[i]));
    if (!same) throw new Error(`${what}: earlier row ${Math.floor(i / w)} changed (${b[i]} -> ${a[i]})`);
  }
  if (bad !== null && a.subarray(bad * w, (bad + 1) * w).every(Number.isFinite)) throw new Error(`${what}: the poisoned row ${bad} came out finite`);
}

let checks = 0;
afterAll(() => console.log(`NaN/Inf causality: ${checks} (path, variant, mask, poison) checks`));

describeEachBackend('a non-finite later token cannot reach earlier ones', (backend) => {
  const paths = backend === 'cpu' ? [...(nativeKernels ? ['native'] : []), 'ts', 'composite'] : backend === 'wasm' ? ['native', 'ts', 'composite'].filter((p) => p !== 'native' || nativeKernels) : ['fused', 'composite'];
  afterEach(() => { setCpuKernelImpl('auto'); tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', false); tf.env().set('ATTENTION_ROPE_FLASH_VARIANT', 'auto' as unknown as boolean); });

  for (const path of paths) {
    // (the WGSL kernels need a real cache's GPU mirror: on webgpu they are checked through callRagged below)
    if (path !== 'fused') it(`FlashAttentionRaggedPaged (${path}): K, V and q of the last new token poisoned; prefill and decode variants`, () => {
      const nH = 4, nKv = 2, D = 16, ps = 4;
      const seqs = [{ start: 6, numNew: 9 }, { start: 0, numNew: 3 }];
      for (const mask of MASKS) {
        for (const poison of POISONS) {
          for (const variant of ['prefill', 'decode'] as const) {
            const c = makeCollection(seqs, nKv, D, ps, 7);
            const q = randomArray(c.totalTokens * nH * D, rng(3));
            const run = (): Float32Array => {
              const qt = tf.tensor2d(q, [c.totalTokens, nH * D]);
              const attrs = { nHeads: nH, nKvHeads: nKv, headDim: D, scale: 0.25, mask, collection: c, layerIdx: 0, variant };
              if (path === 'native' || path === 'ts') setCpuKernelImpl(path);
              const o = path === 'composite' ? flashAttentionRaggedPagedReference(qt, attrs)
                : tf.engine().runKernel(FlashAttentionRaggedPaged, { q: qt }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
              const out = o.dataSync() as Float32Array;
              tf.dispose([o, qt]);
              return out;
            };
            const clean = run();
            const last = seqs[0].start + seqs[0].numNew - 1; // position of sequence 0's last new token
            const page = c.pageTable[Math.floor(last / ps)];
            for (let h = 0; h < nKv; h++) {
              const off = ((page * nKv + h) * ps + (last % ps)) * D;
              c.cache.keys(0)[off + 3] = poison;
              c.cache.values(0)[off + 5] = poison;
            }
            q[(seqs[0].numNew - 1) * nH * D + 1] = poison;
            const dirty = run();
            expectCausal(dirty, clean, nH * D, seqs[0].numNew - 1, seqs[0].numNew - 1, `${path} ${variant} ${mask.variant} ${poison}`);
            expect(Array.from(dirty.subarray(seqs[0].numNew * nH * D))).toEqual(Array.from(clean.subarray(seqs[0].numNew * nH * D)));
            checks++;
          }
        }
      }
    });

    it(`AttentionWithRope.callRagged (${path}): 7 new tokens after 5 cached, the last poisoned; earlier tokens unchanged`, () => {
      if (path === 'composite') tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', true);
      else if (path === 'native' || path === 'ts') setCpuKernelImpl(path);
      for (const [poison, variant] of POISONS.flatMap((p) => (['prefill', 'decode'] as const).map((v) => [p, v] as const))) {
        tf.env().set('ATTENTION_ROPE_FLASH_VARIANT', variant as unknown as boolean);
        const outs: Float32Array[] = [];
        for (const p of [null, poison]) {
          const { layer, cache, hidden } = smallLayer({ slidingWindow: 0 });
          cache.addSequence(0);
          const warm = cache.fetch([0], [5]); // 5 tokens already in the cache
          layer.callRagged(0, rows(5, hidden, 1), warm).dispose();
          cache.step(warm);
          const x = rows(7, hidden, 2).dataSync() as Float32Array;
          if (p !== null) x.fill(p, 6 * hidden, 7 * hidden);
          const kv = cache.fetch([0], [7]);
          const out = layer.callRagged(0, tf.tensor2d(x, [7, hidden]), kv);
          outs.push(out.dataSync() as Float32Array);
          out.dispose();
          layer.dispose();
        }
        expectCausal(outs[1], outs[0], 32, 6, 6, `callRagged ${path} ${variant} ${poison}`);
        checks++;
      }
    });
  }

  it('AttentionWithRope padded apply (composite, differentiable): earlier tokens unchanged', () => {
    for (const poison of POISONS) {
      const { layer, hidden } = smallLayer();
      const x = rows(8, hidden, 4).dataSync() as Float32Array;
      const clean = (layer.apply(tf.tensor3d(x, [1, 8, hidden])) as tf.Tensor).dataSync() as Float32Array;
      x.fill(poison, 7 * hidden, 8 * hidden);
      const dirty = (layer.apply(tf.tensor3d(x, [1, 8, hidden])) as tf.Tensor).dataSync() as Float32Array;
      expectCausal(dirty, clean, hidden, 7, 7, `padded ${poison}`);
      layer.dispose();
      checks++;
    }
  });

  for (const variant of ['fused', 'composite'] as const) {
    it(`training attention (${variant}): forward and dQ of earlier tokens unchanged`, () => {
      tf.env().set('ATTENTION_ROPE_TRAIN_ATTENTION', variant as unknown as boolean);
      const nH = 4, nKv = 2, hd = 8, n = 6, T = n + 3;
      for (const mask of MASKS) {
        for (const poison of POISONS) {
          const attrs = { nHeads: nH, nKvHeads: nKv, headDim: hd, scale: 0.3, mask, rowOffsets: Int32Array.from([0, n, T]) };
          const run = (p: number | null) => {
            const q = seeded(T * nH * hd, 1), k = seeded(T * nKv * hd, 2), v = seeded(T * nKv * hd, 3);
            if (p !== null) { q[(n - 1) * nH * hd + 2] = p; k[(n - 1) * nKv * hd + 1] = p; v[(n - 1) * nKv * hd + 4] = p; }
            const qt = tf.tensor2d(q, [T, nH * hd]), kt = tf.tensor2d(k, [T, nKv * hd]), vt = tf.tensor2d(v, [T, nKv * hd]);
            const earlier = tf.tensor2d(Float32Array.from({ length: T * nH * hd }, (_, i) => (Math.floor(i / (nH * hd)) < n - 1 ? 1 : 0)), [T, nH * hd]);
            const out = flashAttentionRagged(qt, kt, vt, attrs);
            const dq = tf.grad((qq: tf.Tensor) => tf.sum(tf.mul(flashAttentionRagged(qq as tf.Tensor2D, kt, vt, attrs), earlier)))(qt);
            const res = [out.dataSync() as Float32Array, dq.dataSync() as Float32Array];
            tf.dispose([qt, kt, vt, earlier, out, dq]);
            return res;
          };
          const [clean, cleanDq] = run(null);
          const [dirty, dirtyDq] = run(poison);
          // the native training kernel runs items with a non-finite input through its reference loops (1-ulp differences)
          const tol = variant === 'fused' && backend === 'cpu' ? 1e-6 : 0;
          expectCausal(dirty, clean, nH * hd, n - 1, n - 1, `train ${variant} ${mask.variant} ${poison}`, tol);
          expect(Array.from(dirty.subarray(n * nH * hd))).toEqual(Array.from(clean.subarray(n * nH * hd)));
          expectCausal(dirtyDq, cleanDq, nH * hd, n - 1, null, `train dQ ${variant} ${mask.variant} ${poison}`, tol);
          checks++;
        }
      }
      tf.env().set('ATTENTION_ROPE_TRAIN_ATTENTION', 'auto' as unknown as boolean);
    });
  }
});
