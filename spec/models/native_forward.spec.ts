/**
 * The decoder step through the native addon on cpu (models/native_forward.ts) against the layers
 * path (flag ATTENTION_ROPE_NATIVE_FORWARD off) on every model fixture (llama, mistral sliding
 * window, qwen3 qk-norm, ...): a ragged batch of two sequences, prefill then decode steps, logits
 * within 2e-5 and the caches' K/V equal. Also: the native path is the one taken, the packed
 * weights follow a variable reassignment, gradients and the flag send calls to the layers, and a
 * mismatched cache is refused with a named error. (The golden fixtures and float64 families run
 * through this path as well: spec/models/fixtures.spec.ts, families.spec.ts on cpu.)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { isModelFixture } from '../../bin/conformance_models';
import { useBackend } from '../../lib/backends/select';
import { loadPretrained } from '../../models/load';
import type { DecoderForCausalLM } from '../../models/decoder_lm';
import { nativeForwardAddon } from '../../models/native_forward';
import { type HugePages, moveToHugePages } from '../../models/native_weights';
import { nativeKernels } from '../../kernels/cpu/native';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache';

const ROOT = path.join(__dirname, '..', 'fixtures', 'models');
const CASES = fs.readdirSync(ROOT).filter((n) => isModelFixture(path.join(ROOT, n))).sort();
const FLAG = 'ATTENTION_ROPE_NATIVE_FORWARD';

beforeAll(async () => { await useBackend('cpu'); });
afterEach(() => { tf.env().set(FLAG, true); tf.env().set('ATTENTION_ROPE_HUGE_PAGES', true); });

/** Prefill of two ragged prompts (logits of every row), then 3 decode steps: all logits and the final cache. */
function run(model: DecoderForCausalLM, native: boolean): { logits: Float32Array[]; keys: Float32Array[] } {
  tf.env().set(FLAG, native);
  const V = model.config.vocabSize;
  const cache = model.createCache({ numPages: 16 });
  cache.addSequence(0);
  cache.addSequence(1);
  const logits: Float32Array[] = [];
  let kv = cache.fetch([0, 1], [7, 12]);
  const ids = Array.from({ length: 19 }, (_, i) => (i * 37 + 5) % V);
  let y = model.forwardRagged(ids, kv);
  cache.step(kv);
  logits.push(y.dataSync() as Float32Array);
  y.dispose();
  for (let s = 0; s < 3; s++) {
    kv = cache.fetch([0, 1], [1, 1]);
    y = model.forwardRagged([(s * 11 + 3) % V, (s * 13 + 7) % V], kv, [1, 0]);
    cache.step(kv);
    logits.push(y.dataSync() as Float32Array);
    y.dispose();
  }
  const keys = Array.from({ length: model.config.numHiddenLayers }, (_, l) => cache.keys(l).slice());
  return { logits, keys };
}

const maxDiff = (a: Float32Array, b: Float32Array) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

test('finds the model fixtures', () => expect(CASES.length).toBeGreaterThanOrEqual(4));

test.each(CASES)('%s: native step equals the layers (logits, cache), no tensor leaked', async (name) => {
  const { model } = await loadPretrained(path.join(ROOT, name));
  const probe = model.createCache();
  probe.addSequence(0);
  expect(nativeForwardAddon(model, probe.fetch([0], [1]))).not.toBeNull();
  const layers = run(model, false);
  const before = tf.memory().numTensors;
  const native = run(model, true);
  expect(tf.memory().numTensors).toBe(before);
  const worst = Math.max(...native.logits.map((l, i) => maxDiff(l, layers.logits[i])));
  expect(worst).toBeLessThanOrEqual(2e-5);
  expect(Math.max(...native.keys.map((k, l) => maxDiff(k, layers.keys[l])))).toBeLessThanOrEqual(1e-5);
  model.dispose();
});

test('packed weights follow a reassigned variable; the flag and a taped gradient use the layers', async () => {
  const { model } = await loadPretrained(path.join(ROOT, 'tiny_llama'));
  const first = () => run(model, true).logits[0];
  const before = first();
  const k = model.blocks[0].attn.kProj!.kernel; // lives only in the packed qkv copy
  k.write(tf.mul(k.read(), 0.5));
  const after = first();
  expect(maxDiff(before, after)).toBeGreaterThan(1e-4);
  expect(maxDiff(after, run(model, false).logits[0])).toBeLessThanOrEqual(2e-5);
  const cache = model.createCache();
  cache.addSequence(0);
  const kv = cache.fetch([0], [2]);
  tf.env().set(FLAG, false);
  expect(nativeForwardAddon(model, kv)).toBeNull();
  tf.env().set(FLAG, true);
  expect(nativeForwardAddon(model, kv)).not.toBeNull();
  let taped: unknown = 'unset';
  tf.grad((x: tf.Tensor) => { taped = nativeForwardAddon(model, kv); return tf.sum(x); })(tf.ones([1]));
  expect(taped).toBeNull();
  model.dispose();
});

test('a cache of the wrong shape is refused with a named error', async () => {
  const { model } = await loadPretrained(path.join(ROOT, 'tiny_llama'));
  const p = model.kvParams;
  const wrong = new PagedKVCache({ ...p, headDim: p.headDim * 2 });
  wrong.addSequence(0);
  const kv = wrong.fetch([0], [2]);
  expect(() => model.forwardRagged([1, 2], kv)).toThrow(/DecoderForCausalLM.forwardRagged.*cache holds .* KV heads of dim \d+, the model needs/);
  model.dispose();
});

describe('huge pages (native/huge_pages.cc)', () => {
  const n = nativeKernels;
  (n?.allocHuge ? it : it.skip)('allocHuge gives a zeroed, writable buffer; bad arguments are named', () => {
    const buf = new Float32Array(n!.allocHuge!(3 << 20)); // 3 MiB: crosses a 2 MiB boundary
    expect(buf.length).toBe((3 << 20) / 4);
    expect(buf.every((v) => v === 0)).toBe(true);
    buf.fill(2.5, buf.length - 5);
    expect(Array.from(buf.subarray(buf.length - 6))).toEqual([0, 2.5, 2.5, 2.5, 2.5, 2.5]);
    expect(() => n!.allocHuge!(-1)).toThrow(/\[native.allocHuge\] bytes \(-1.*\) must be an integer/);
    expect(() => n!.allocHuge!('x' as unknown as number)).toThrow('[native.allocHuge] expected a byte count');
  });

  it('moveToHugePages keeps every value and shape; the native step gives the same logits after it', async () => {
    const { model } = await loadPretrained(path.join(ROOT, 'tiny_qwen3'));
    const before = run(model, true).logits;
    const vars = model.blocks.flatMap((b) => [b.mlp.gateKernel, b.mlp.downKernel, b.attn.qProj!.kernel]).concat([model.embedTable]);
    const values = vars.map((v) => (v.read().dataSync() as Float32Array).slice());
    const huge = { allocHuge: (bytes: number) => new ArrayBuffer(bytes) }; // the same moves, on a plain buffer when no addon
    expect(moveToHugePages(vars, n?.allocHuge ? (n as HugePages) : huge)).toBe(true);
    vars.forEach((v, i) => expect(v.read().dataSync()).toEqual(values[i]));
    expect(new Set(vars.map((v) => (v.read().dataSync() as Float32Array).buffer)).size).toBe(1); // one arena
    run(model, true).logits.forEach((l, i) => expect(l).toEqual(before[i]));
    expect(moveToHugePages(vars, { allocHuge: () => { throw new Error('no memory'); } })).toBe(false);
    model.dispose();
  });
});
