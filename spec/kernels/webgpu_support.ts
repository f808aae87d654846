/**
 * Helpers of the webgpu kernel specs: the backend (Dawn on the software Vulkan driver that
 * scripts/setup-vulkan.sh installs; the specs fail, not skip, without it), caches with scrambled
 * pages, random data and exact float64 references of both kernels.
 */
import * as tf from '@tensorflow/tfjs';
import { disposeWebGpuNode, initWebGpuNode, webGpuNodeStatus } from '../../lib/backends/webgpu_node';
import type { PagedKVCollection } from '../../lib/kv_cache/collection';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache';
import type { KVCacheParams } from '../../lib/kv_cache/params';
import type { RopeTables } from '../../lib/rope/rope_tables';
import type { MaskSpec } from '../../lib/types';
import { registerAllKernels } from '../../kernels/register_all';

/** Starts webgpu (throws with the reason when there is no adapter) and registers the kernels. */
export async function startWebGpu(): Promise<void> {
  const ok = await initWebGpuNode();
  if (!ok) throw new Error(`webgpu unavailable: ${webGpuNodeStatus().reason} (run scripts/setup-vulkan.sh)`);
  registerAllKernels();
  await tf.setBackend('webgpu');
  await tf.ready();
}

export function stopWebGpu(): void {
  tf.setBackend('cpu');
  disposeWebGpuNode();
}

/** Deterministic uniform floats in [-1, 1). */
export function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[i] = (s / 4294967296) * 2 - 1;
  }
  return out;
}

/**
 * A cache whose free list hands pages out in a scrambled order with no page at its own index
 * (filler sequences of one page each, released in a shuffled order).
 */
export function scrambledCache(nKvHeads: number, headDim: number, pageSize: number, numPages: number, numLayers = 1,
  format: Partial<Pick<KVCacheParams, 'dtype' | 'kScale' | 'vScale'>> = {}): PagedKVCache {
  const cache = new PagedKVCache({ nKvHeads, headDim, pageSize, numPages, numLayers, ...format });
  const ids: number[] = [];
  for (let i = 0; i < numPages; i++) ids.push(cache.addSequence(100000 + i));
  const c = cache.fetch(ids, ids.map(() => pageSize));
  cache.step(c);
  // Pop order = reverse of release order; make it a derangement of 0..n-1.
  const order = Array.from({ length: numPages }, (_, i) => i);
  const r = rand(numPages, 7);
  for (let i = numPages - 1; i > 0; i--) {
    const j = Math.floor(((r[i] + 1) / 2) * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  for (let i = 0; i < numPages; i++) if (order[i] === i) { const j = (i + 1) % numPages; [order[i], order[j]] = [order[j], order[i]]; }
  for (let i = numPages - 1; i >= 0; i--) cache.releaseSequence(100000 + order[i]);
  return cache;
}

/** Rope tables (rotate-half or GPT-J), `rotaryDim` of `headDim`, theta 10000. */
export function ropeTables(headDim: number, rotaryDim: number, maxPositions: number, interleaved: boolean): RopeTables {
  const half = rotaryDim / 2;
  const cos = new Float32Array(maxPositions * half);
  const sin = new Float32Array(maxPositions * half);
  for (let p = 0; p < maxPositions; p++)
    for (let i = 0; i < half; i++) {
      const a = p * Math.pow(10000, (-2 * i) / rotaryDim);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  return { cos, sin, headDim, rotaryDim, maxPositions, interleaved };
}

/** Float64 rope (+ optional RMSNorm) of one head vector. */
export function ropeRef(x: Float64Array, pos: number, t: RopeTables, w?: Float32Array, eps = 0): Float64Array {
  const D = x.length;
  let v = x;
  if (w) {
    let ss = 0;
    for (let d = 0; d < D; d++) ss += x[d] * x[d];
    const inv = 1 / Math.sqrt(ss / D + eps);
    v = x.map((xd, d) => xd * inv * w[d]);
  }
  const out = Float64Array.from(v);
  const half = t.rotaryDim / 2;
  for (let i = 0; i < half; i++) {
    const [a, b] = t.interleaved ? [2 * i, 2 * i + 1] : [i, i + half];
    const c = t.cos[pos * half + i], s = t.sin[pos * half + i];
    out[a] = v[a] * c - v[b] * s;
    out[b] = v[b] * c + v[a] * s;
  }
  return out;
}

export function visibleRef(m: MaskSpec, i: number, j: number): boolean {
  switch (m.variant) {
    case 'causal': return j <= i;
    case 'null': return true;
    case 'sliding_window_causal': return j <= i && i - j < m.window;
    case 'sliding_window': return Math.abs(i - j) < m.window;
    case 'chunked_causal': return j <= i && Math.floor(i / m.chunk) === Math.floor(j / m.chunk);
  }
}

/**
 * Float64 attention of the new rows of `c` over per-sequence K/V kept by the spec
 * (`kv[b].k/v`: `[L_b, nKv, D]`). Returns `[T, nH * D]`.
 */
export function attentionRef(q: Float32Array, c: PagedKVCollection, kv: { k: Float32Array; v: Float32Array }[],
  nH: number, nKv: number, D: number, scale: number, mask: MaskSpec): Float64Array {
  const out = new Float64Array(c.totalTokens * nH * D);
  const G = nH / nKv;
  for (let b = 0; b < c.seqIds.length; b++) {
    const L = c.startPositions[b] + c.numNewTokens[b];
    for (let r = c.rowOffsets[b]; r < c.rowOffsets[b + 1]; r++) {
      const i = c.startPositions[b] + r - c.rowOffsets[b];
      for (let h = 0; h < nH; h++) {
        const kh = Math.floor(h / G);
        const s = new Float64Array(L).fill(-Infinity);
        let mx = -Infinity;
        for (let j = 0; j < L; j++) {
          if (!visibleRef(mask, i, j)) continue;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[(r * nH + h) * D + d] * kv[b].k[(j * nKv + kh) * D + d];
          s[j] = dot * scale;
          mx = Math.max(mx, s[j]);
        }
        let sum = 0;
        for (let j = 0; j < L; j++) if (s[j] > -Infinity) { s[j] = Math.exp(s[j] - mx); sum += s[j]; } else s[j] = 0;
        if (sum === 0) continue;
        for (let j = 0; j < L; j++) {
          if (s[j] === 0) continue;
          for (let d = 0; d < D; d++) out[(r * nH + h) * D + d] += (s[j] / sum) * kv[b].v[(j * nKv + kh) * D + d];
        }
      }
    }
  }
  return out;
}

/** max |a - b| / max(1, max |b|), and whether a has NaN. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let e = 0, m = 1;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i])) return Infinity;
    e = Math.max(e, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return e / m;
}
