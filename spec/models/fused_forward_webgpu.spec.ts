/**
 * The fused whole-model step (models/fused_forward.ts) on webgpu against the golden Hugging Face
 * fixtures: teacher-forced logits within 1e-4 and the greedy continuations (picked on the device
 * by ArgMaxRows) token for token, for every model fixture (llama, mistral sliding window, qwen3
 * qk-norm). Also checks the fused path is the one taken, that the packed weights follow a variable
 * reassignment, and that bad logitRows are refused.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { isModelFixture, runModelFixture } from '../../bin/conformance_models';
import { fusedForwardSupported } from '../../models/fused_forward';
import { loadPretrained } from '../../models/load';
import { startWebGpu, stopWebGpu } from '../kernels/webgpu_support';

jest.setTimeout(900000);

const ROOT = path.join(__dirname, '..', 'fixtures', 'models');
const CASES = fs.readdirSync(ROOT).filter((n) => isModelFixture(path.join(ROOT, n))).sort();

beforeAll(startWebGpu);
afterAll(stopWebGpu);

test('every model fixture takes the fused path on webgpu', async () => {
  expect(CASES.length).toBeGreaterThanOrEqual(4);
  for (const name of CASES) {
    const { model } = await loadPretrained(path.join(ROOT, name));
    expect([name, fusedForwardSupported(model)]).toEqual([name, true]);
    model.dispose();
  }
});

test.each(CASES)('%s: fused logits and on-device greedy match the fixture', async (name) => {
  const r = await runModelFixture(path.join(ROOT, name));
  if (!r.passed) throw new Error(`${name}: ${r.detail}`);
  expect(r.error).toBeLessThanOrEqual(1e-4);
});

test('packed weights follow a reassigned variable; bad logitRows are refused', async () => {
  const { model } = await loadPretrained(path.join(ROOT, 'tiny_llama'));
  const run = async () => {
    const cache = model.createCache();
    cache.addSequence(0);
    const kv = cache.fetch([0], [3]);
    const y = model.forwardRagged([1, 17, 42], kv, [2]); // [1, vocab]
    const out = (await y.data()) as Float32Array;
    y.dispose();
    return out;
  };
  const before = await run();
  const down = model.blocks[1].mlp.downKernel;
  down.write(tf.mul(down.read(), 0.5));
  const after = await run();
  let moved = 0;
  for (let i = 0; i < before.length; i++) moved = Math.max(moved, Math.abs(before[i] - after[i]));
  expect(moved).toBeGreaterThan(1e-4);
  const cache = model.createCache();
  cache.addSequence(0);
  const kv = cache.fetch([0], [2]);
  expect(() => model.forwardRagged([1, 2], kv, [2])).toThrow(/logitRows\[0\] \(2\) must be in \[0, 2\)/);
  model.dispose();
});
