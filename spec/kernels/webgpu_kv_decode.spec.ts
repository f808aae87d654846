/**
 * FlashAttentionRaggedPaged on webgpu over compact caches (float16, bfloat16, int8, float8_e4m3):
 * each decode kernel (the streaming kernel with its knobs, also over float32 pools; packed 16-byte
 * loads, the subgroup kernel, shared-memory tiles; forced with TFJS_ATTENTION_WEBGPU_DECODE) and the prefill tiles against a float64 reference computed from the
 * cache's own decoded rows (so the kernel is checked, not the format's rounding), with scrambled
 * pages, splits, masks, GQA ratios and head dims where a row is 1, 2, 4 or 8 sixteen-byte words;
 * which prefill kernel runs where (the subgroup-matrix one needs a GPU with tensor cores: lavapipe
 * has none, so its numbers are checked on the H200 by bench/device/check_webgpu.mjs).
 */
import * as tf from '@tensorflow/tfjs';
import type { KVCacheDType } from '../../core/kv_dtype';
import { FlashAttentionRaggedPaged, type FlashAttentionRaggedPagedAttrs, type FlashAttentionVariant } from '../../kernels/kernel_names';
import { packedDecodeLayout } from '../../kernels/webgpu/flash_decode_packed_wgsl';
import { streamDecodeLayout } from '../../kernels/webgpu/flash_decode_stream_wgsl';
import { chooseDecode, choosePrefillKind, type DecodeKind, webgpuFlashTuning } from '../../kernels/webgpu/flash_plan';
import type { MaskSpec } from '../../lib/types';
import { attentionRef, rand, relErr, scrambledCache, startWebGpu, stopWebGpu } from './webgpu_support';

const causal: MaskSpec = { variant: 'causal', window: 0, chunk: 0 };
const FORMAT: Record<KVCacheDType, { kScale?: number; vScale?: number }> = {
  float32: {}, float16: {}, bfloat16: {}, int8: {}, float8_e4m3: { kScale: 0.5 / 448, vScale: 0.75 / 448 },
};

interface Case { dtype: KVCacheDType; nH: number; nKv: number; D: number; ps: number; seqs: [number, number][]; mask: MaskSpec; variant: FlashAttentionVariant }

async function runCase(k: Case, seed: number): Promise<number> {
  const { nH, nKv, D, ps, seqs } = k;
  const need = seqs.reduce((n, [s, t]) => n + Math.ceil((s + t) / ps) + 1, 0);
  const cache = scrambledCache(nKv, D, ps, need + 2, 1, { dtype: k.dtype, ...FORMAT[k.dtype] });
  const ids = seqs.map((_, b) => cache.addSequence(b));
  let sd = seed;
  const write = (counts: number[]) => {
    const c = cache.fetch(ids, counts);
    cache.writeTokens(0, c, rand(c.totalTokens * nKv * D, ++sd), rand(c.totalTokens * nKv * D, ++sd)); // [T, nKv * D] each
    return c;
  };
  cache.step(write(seqs.map(([s]) => s)));
  const c = write(seqs.map(([, t]) => t));
  // The decoded rows the kernel must see: readSequence gives [nKv, L, D]; the reference wants [L, nKv, D].
  const kv = seqs.map(([s, t], b) => {
    const L = s + t, r = cache.readSequence(0, c, b, L);
    const k2 = new Float32Array(L * nKv * D), v2 = new Float32Array(L * nKv * D);
    for (let h = 0; h < nKv; h++) for (let j = 0; j < L; j++) {
      k2.set(r.k.subarray((h * L + j) * D, (h * L + j + 1) * D), (j * nKv + h) * D);
      v2.set(r.v.subarray((h * L + j) * D, (h * L + j + 1) * D), (j * nKv + h) * D);
    }
    return { k: k2, v: v2 };
  });
  const q = rand(c.totalTokens * nH * D, ++sd); // [T, nH * D]
  const attrs: FlashAttentionRaggedPagedAttrs = { nHeads: nH, nKvHeads: nKv, headDim: D, scale: 1 / Math.sqrt(D), mask: k.mask, collection: c, layerIdx: 0, variant: k.variant };
  const qt = tf.tensor2d(q, [c.totalTokens, nH * D]);
  const out = tf.engine().runKernel(FlashAttentionRaggedPaged, { q: qt }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
  const got = await out.data();
  tf.dispose([qt, out]);
  cache.attachDeviceMirror(null);
  return relErr(got, attentionRef(q, c, kv, nH, nKv, D, attrs.scale, k.mask));
}

const TOL = 2e-5;
jest.setTimeout(600000);

describe('FlashAttentionRaggedPaged [webgpu] over compact caches', () => {
  beforeAll(startWebGpu);
  afterAll(() => { delete process.env.TFJS_ATTENTION_WEBGPU_DECODE; stopWebGpu(); });

  it('packed layout: 16-byte words per row, lanes per key, keys per subgroup load', () => {
    expect(packedDecodeLayout('float16', 128, 32)).toEqual({ wpr: 16, lk: 16, cw: 1, kps: 2, epl: 8 });
    expect(packedDecodeLayout('int8', 128, 32)).toEqual({ wpr: 8, lk: 8, cw: 1, kps: 4, epl: 16 });
    expect(packedDecodeLayout('bfloat16', 128, 8)).toEqual({ wpr: 16, lk: 8, cw: 2, kps: 1, epl: 8 });
    expect(packedDecodeLayout('float8_e4m3', 256, 32)).toEqual({ wpr: 16, lk: 16, cw: 1, kps: 2, epl: 16 });
    expect(packedDecodeLayout('float16', 80, 32)).toBeNull(); // 160 bytes: not a power of two of words
    expect(packedDecodeLayout('int8', 8, 32)).toBeNull(); // half a word
    expect(packedDecodeLayout('float32', 128, 32)).toBeNull();
  });

  it('stream layout: words per row, lanes per key, keys per subgroup load, 8- or 16-byte words', () => {
    expect(streamDecodeLayout('float16', 128, 32, 1)).toEqual({ wpr: 16, lk: 16, cw: 1, kps: 2, epl: 8 });
    expect(streamDecodeLayout('float16', 128, 32, 2)).toEqual({ wpr: 16, lk: 8, cw: 2, kps: 4, epl: 8 });
    expect(streamDecodeLayout('int8', 128, 32, 1, 2)).toEqual({ wpr: 16, lk: 16, cw: 1, kps: 2, epl: 8 });
    expect(streamDecodeLayout('float32', 128, 32, 1)).toEqual({ wpr: 32, lk: 32, cw: 1, kps: 1, epl: 4 });
    expect(streamDecodeLayout('float32', 256, 32, 1)).toEqual({ wpr: 64, lk: 32, cw: 2, kps: 1, epl: 4 }); // at most a subgroup a key
    expect(streamDecodeLayout('float32', 128, 32, 1, 2)).toBeNull(); // float32 words are 16 bytes
    expect(streamDecodeLayout('float16', 80, 32, 1)).toBeNull();
    expect(streamDecodeLayout('int8', 8, 32, 1)).toBeNull();
  });

  it('TFJS_ATTENTION_WEBGPU_DECODE forces a decode kernel and rejects unknown names', () => {
    const a = { nHeads: 8, nKvHeads: 2, headDim: 64 } as FlashAttentionRaggedPagedAttrs;
    try {
      expect(chooseDecode(a, 32768, 32, 'float16').kind).toBe('stream');
      expect(chooseDecode(a, 32768, 32, 'float32').kind).toBe(webgpuFlashTuning.decodeStreamFloat32 ? 'stream' : 'subgroup');
      expect(chooseDecode(a, 32768, 8, 'float16').kind).toBe('packed'); // 8-lane subgroups (lavapipe)
      expect(chooseDecode(a, 32768, 8, 'float32').kind).toBe('subgroup');
      expect(chooseDecode(a, 32768, 0, 'float16').kind).toBe('tiles'); // no fixed subgroup size
      process.env.TFJS_ATTENTION_WEBGPU_DECODE = 'stream';
      expect(chooseDecode(a, 32768, 32, 'float32').kind).toBe('stream');
      expect(chooseDecode(a, 32768, 8, 'float16').kind).toBe('stream');
      process.env.TFJS_ATTENTION_WEBGPU_DECODE = 'packed';
      expect(chooseDecode(a, 32768, 32, 'float16').kind).toBe('packed');
      process.env.TFJS_ATTENTION_WEBGPU_DECODE = 'subgroup';
      expect(chooseDecode(a, 32768, 32, 'float16').kind).toBe('subgroup');
      process.env.TFJS_ATTENTION_WEBGPU_DECODE = 'tiles';
      expect(chooseDecode(a, 32768, 32, 'float16').kind).toBe('tiles');
      process.env.TFJS_ATTENTION_WEBGPU_DECODE = 'packed';
      expect(chooseDecode(a, 32768, 0, 'float16').kind).toBe('tiles'); // no fixed subgroup size: falls through
      process.env.TFJS_ATTENTION_WEBGPU_DECODE = 'fast';
      expect(() => chooseDecode(a, 32768, 32, 'float16')).toThrow(/TFJS_ATTENTION_WEBGPU_DECODE \(fast\) must be one of auto, stream, packed, subgroup, tiles/);
    } finally {
      delete process.env.TFJS_ATTENTION_WEBGPU_DECODE;
    }
  });

  const seqs: [number, number][] = [[300, 1], [0, 0], [5, 1], [130, 2], [17, 1]];
  const dtypes = (Object.keys(FORMAT) as Case['dtype'][]).filter((d) => d !== 'float32');
  // The streaming kernel (forced: lavapipe's 8-lane subgroups do not take it by default) over every
  // dtype, float32 too, and its knobs over two, splits on, masks off. Lavapipe compiles these
  // unrolled shaders slowly (10-120 s each), hence not every knob over every dtype.
  type Knobs = Partial<typeof webgpuFlashTuning>;
  const knobs: [string, Knobs, Case['dtype'][]][] = [
    ['default', {}, Object.keys(FORMAT) as Case['dtype'][]],
    ['no prefetch, scatter reduce, q in workgroup memory, bit-trick widening', { decodeStreamPrefetch: false, decodeStreamReduce: 'scatter', decodeStreamQShared: true, decodeStreamWiden: 'bits' }, ['int8', 'float16']],
    ['8-byte words, 2 keys a lane, conversion widening', { decodeStreamVec: 2, decodeStreamKeys: 2, decodeStreamWiden: 'cvt' }, ['float8_e4m3', 'bfloat16']],
    ['4 subgroups, 2 words a lane, 8 keys a lane, scatter', { decodeStreamWarps: 4, decodeStreamWords: 2, decodeStreamFloat32Words: 2, decodeStreamKeys: 8, decodeStreamReduce: 'scatter' }, ['float32']],
  ];
  for (const [name, tune, kinds] of knobs) {
    for (const dtype of kinds) {
      it(`${dtype} decode, stream kernel (${name}), GQA 4, d64, scrambled pages of 16, splits`, async () => {
        process.env.TFJS_ATTENTION_WEBGPU_DECODE = 'stream';
        const t = webgpuFlashTuning as unknown as Record<string, unknown>;
        const all: Knobs = { decodeStreamMinSplitKeys: 32, decodeStreamTarget: 256, ...tune };
        const saved = Object.fromEntries(Object.keys(all).map((k) => [k, t[k]]));
        Object.assign(t, all);
        try {
          expect(await runCase({ dtype, nH: 8, nKv: 2, D: 64, ps: 16, seqs, mask: causal, variant: 'decode' }, 3)).toBeLessThan(TOL);
        } finally {
          Object.assign(t, saved);
          delete process.env.TFJS_ATTENTION_WEBGPU_DECODE;
        }
      });
    }
  }
  for (const dtype of dtypes) {
    // The older kernels over two formats (halves, byte codes with row scales); the packed one over all.
    for (const kind of (dtype === 'float16' || dtype === 'int8' ? ['packed', 'subgroup', 'tiles'] : ['packed']) as DecodeKind[]) {
      it(`${dtype} decode, ${kind} kernel, GQA 4, d64, scrambled pages of 16, splits`, async () => {
        process.env.TFJS_ATTENTION_WEBGPU_DECODE = kind;
        const t = webgpuFlashTuning, saved = [t.decodeMinSplitKeys, t.decodeTargetWorkgroups];
        t.decodeMinSplitKeys = 32;
        t.decodeTargetWorkgroups = 256;
        try {
          expect(await runCase({ dtype, nH: 8, nKv: 2, D: 64, ps: 16, seqs, mask: causal, variant: 'decode' }, 3)).toBeLessThan(TOL);
        } finally {
          [t.decodeMinSplitKeys, t.decodeTargetWorkgroups] = saved;
          delete process.env.TFJS_ATTENTION_WEBGPU_DECODE;
        }
      });
    }
  }
  // The packed kernel over the shapes that change its layout: 1, 2 (two words a lane on 8 lanes), 8 words a row; GQA 1 and 8; masks.
  const shapes: [Case['dtype'], number, number, number, MaskSpec][] = [
    ['float16', 4, 4, 8, causal], ['int8', 8, 1, 16, causal], ['float16', 16, 2, 128, causal], ['float8_e4m3', 4, 2, 128, causal],
    ['bfloat16', 4, 2, 32, { variant: 'sliding_window_causal', window: 37, chunk: 0 }], ['int8', 4, 2, 64, { variant: 'chunked_causal', window: 0, chunk: 64 }],
  ];
  for (const [dtype, nH, nKv, D, mask] of shapes) {
    for (const kind of D <= 64 ? ['packed', 'stream'] : ['packed']) { // stream: small heads (lavapipe compile time)
      it(`${dtype} ${kind} decode ${nH}/${nKv} d${D} ps7 ${mask.variant}`, async () => {
        process.env.TFJS_ATTENTION_WEBGPU_DECODE = kind;
        try {
          expect(await runCase({ dtype, nH, nKv, D, ps: 7, seqs: [[200, 1], [3, 1], [64, 3]], mask, variant: 'decode' }, D)).toBeLessThan(TOL);
        } finally {
          delete process.env.TFJS_ATTENTION_WEBGPU_DECODE;
        }
      });
    }
  }
  it('stream decode, pages of 128 (whole blocks inside a page) and a sliding window crossing them', async () => {
    const swc: MaskSpec = { variant: 'sliding_window_causal', window: 300, chunk: 0 };
    process.env.TFJS_ATTENTION_WEBGPU_DECODE = 'stream';
    try {
      expect(await runCase({ dtype: 'float16', nH: 8, nKv: 2, D: 64, ps: 128, seqs: [[700, 1], [129, 1], [256, 2]], mask: causal, variant: 'decode' }, 9)).toBeLessThan(TOL);
      expect(await runCase({ dtype: 'int8', nH: 8, nKv: 2, D: 64, ps: 128, seqs: [[700, 1], [129, 1], [256, 2]], mask: swc, variant: 'decode' }, 10)).toBeLessThan(TOL);
    } finally {
      delete process.env.TFJS_ATTENTION_WEBGPU_DECODE;
    }
  });
  it('prefill kernel: subgroup matrices (when enabled) for float16 caches where offered, TFJS_ATTENTION_WEBGPU_PREFILL forces one', () => {
    expect(webgpuFlashTuning.prefillSgmat).toBe(true); // on since it passed the H200 check (bench/device/sgmat_prefill_check.ts)
    const a = { nHeads: 32, nKvHeads: 8, headDim: 128 } as FlashAttentionRaggedPagedAttrs;
    const h200 = { subgroupMatrix: true, shaderF16: true, subgroupSize: 32 };
    const lavapipe = { subgroupMatrix: false, shaderF16: true, subgroupSize: 8 };
    try {
      webgpuFlashTuning.prefillSgmat = false;
      expect(choosePrefillKind(a, h200, 'float16')).toBe('tile');
      process.env.TFJS_ATTENTION_WEBGPU_PREFILL = 'sgmat';
      expect(choosePrefillKind(a, h200, 'float16')).toBe('tile'); // not even forced while off
      delete process.env.TFJS_ATTENTION_WEBGPU_PREFILL;
      webgpuFlashTuning.prefillSgmat = true;
      expect(choosePrefillKind(a, h200, 'float16')).toBe('sgmat');
      expect(choosePrefillKind(a, { ...h200, subgroupIdBuiltin: false }, 'float16')).toBe('tile'); // no subgroup_id: offsets not uniform
      expect(choosePrefillKind(a, h200, 'float32')).toBe('tile');
      expect(choosePrefillKind(a, h200, 'int8')).toBe('tile');
      expect(choosePrefillKind(a, { ...h200, shaderF16: false }, 'float16')).toBe('tile');
      expect(choosePrefillKind(a, lavapipe, 'float16')).toBe('tile');
      expect(choosePrefillKind({ ...a, headDim: 72 } as FlashAttentionRaggedPagedAttrs, h200, 'float16')).toBe('tile'); // not a multiple of 16
      expect(choosePrefillKind({ ...a, headDim: 6 } as FlashAttentionRaggedPagedAttrs, h200, 'float32')).toBe('scalar');
      process.env.TFJS_ATTENTION_WEBGPU_PREFILL = 'sgmat';
      expect(choosePrefillKind(a, h200, 'float32')).toBe('sgmat'); // narrowed to f16 on the fly
      expect(choosePrefillKind(a, lavapipe, 'float16')).toBe('tile'); // cannot: falls back
      process.env.TFJS_ATTENTION_WEBGPU_PREFILL = 'tile';
      expect(choosePrefillKind(a, h200, 'float16')).toBe('tile');
      process.env.TFJS_ATTENTION_WEBGPU_PREFILL = 'scalar';
      expect(choosePrefillKind(a, h200, 'float32')).toBe('scalar');
      expect(choosePrefillKind(a, h200, 'float16')).toBe('tile'); // the scalar kernel reads float32 pools
      process.env.TFJS_ATTENTION_WEBGPU_PREFILL = 'mma';
      expect(() => choosePrefillKind(a, h200, 'float16')).toThrow(/TFJS_ATTENTION_WEBGPU_PREFILL \(mma\) must be one of auto, sgmat, tile, scalar/);
    } finally {
      delete process.env.TFJS_ATTENTION_WEBGPU_PREFILL;
      webgpuFlashTuning.prefillSgmat = true;
    }
  });

  for (const dtype of ['float16', 'float8_e4m3'] as const) {
    it(`${dtype} prefill tiles and the auto path`, async () => {
      expect(await runCase({ dtype, nH: 8, nKv: 2, D: 64, ps: 16, seqs: [[37, 21], [0, 45], [130, 3]], mask: causal, variant: 'prefill' }, 5)).toBeLessThan(TOL);
      expect(await runCase({ dtype, nH: 8, nKv: 2, D: 64, ps: 16, seqs: [[37, 1], [0, 4], [130, 3]], mask: causal, variant: 'auto' }, 6)).toBeLessThan(TOL);
    });
  }
});
