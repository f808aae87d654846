/**
 * The layer in a browser page (bundle with `node browser/bundle.cjs browser/example.ts <outdir>`,
 * then serve <outdir> with browser/example.html over http://localhost or https: WebGPU needs a
 * secure context). Picks webgpu on a hardware adapter, else webgl (or `?backend=cpu|webgl|webgpu`); prefills two
 * sequences of a ragged batch, then decodes one token for each, through the paged KV cache.
 */
import * as tf from '@tensorflow/tfjs';
import { AttentionWithRope, PagedKVCache, RotaryEmbedding, useBackend } from '../lib/index.js';

export interface ExampleResult { backend: string; prefill: number[]; decode: number[]; finite: boolean; ms: number }

/**
 * `?backend=` of the page URL when given; else webgpu where `navigator.gpu` yields a hardware
 * adapter, else webgl (a software WebGPU adapter, e.g. SwiftShader, is no faster than WebGL).
 */
export async function pickBackend(): Promise<string> {
  const asked = new URLSearchParams(location.search).get('backend');
  if (asked) return asked;
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
  const info = (adapter as { info?: { isFallbackAdapter?: boolean } } | null)?.info;
  const fallback = info?.isFallbackAdapter === true;
  return adapter && !fallback ? 'webgpu' : 'webgl';
}

export async function runExample(backend?: string): Promise<ExampleResult> {
  const t0 = performance.now();
  await useBackend(backend ?? await pickBackend());   // also registers the fused kernels
  if (tf.getBackend() === 'webgl') tf.env().set('WEBGL_USE_SHAPES_UNIFORMS', true); // far fewer shader compiles
  const rope = new RotaryEmbedding({ headDim: 16, theta: 10000, maxSeqLen: 256 });
  const attn = new AttentionWithRope({ rope, numAttentionHeads: 4, numKeyValueHeads: 2, hiddenSize: 64,
    kvParams: { nKvHeads: 2, headDim: 16, pageSize: 16, numLayers: 1, numPages: 32 } });
  const cache = new PagedKVCache(attn.kvParams);
  cache.addSequence(0); cache.addSequence(1);

  let kv = cache.fetch([0, 1], [5, 3]);                  // prefill 5 and 3 tokens
  const x = tf.randomNormal<tf.Rank.R2>([8, 64], 0, 1, 'float32', 7); // [T=8, hidden]
  const y = attn.callRagged(0, x, kv);                  // [8, 64]
  cache.step(kv);

  kv = cache.fetch([0, 1], [1, 1]);                      // decode one token each
  const xd = tf.randomNormal<tf.Rank.R2>([2, 64], 0, 1, 'float32', 8); // [T=2, hidden]
  const yd = attn.callRagged(0, xd, kv);                // [2, 64]
  cache.step(kv);

  const values = [...await y.data(), ...await yd.data()];
  const result = { backend: tf.getBackend(), prefill: y.shape, decode: yd.shape, finite: values.every(Number.isFinite), ms: performance.now() - t0 };
  tf.dispose([x, y, xd, yd]);
  attn.dispose();
  return result;
}

Object.assign(globalThis, { __runExample: runExample });
if (typeof document !== 'undefined' && document.getElementById('out')) {
  runExample().then(
    (r) => { document.getElementById('out')!.textContent = JSON.stringify(r, null, 2); },
    (e) => { document.getElementById('out')!.textContent = `error: ${String(e)}`; });
}
