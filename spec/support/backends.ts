/**
 * Runs a spec body on each backend (after tfjs's describeWithFlags). A backend that cannot
 * start here is reported as a skip with its reason, never silently dropped.
 */
import * as tf from '@tensorflow/tfjs';
import { envSwitch } from '../../core/env';
import { useBackend } from '../../lib/backends/select';

export const SPEC_BACKENDS = (envSwitch('SPEC_BACKENDS', 'SPEC_BACKENDS') ?? 'cpu,wasm').split(',').filter(Boolean);

export function describeEachBackend(title: string, body: (backend: string) => void, backends = SPEC_BACKENDS): void {
  for (const backend of backends) {
    describe(`${title} [${backend}]`, () => {
      beforeAll(async () => { await useBackend(backend); });
      body(backend);
    });
  }
}

/** Asserts tfjs holds the same number of tensors after `fn` as before. */
export function expectNoLeak<T>(fn: () => T): T {
  const before = tf.memory().numTensors;
  const out = fn();
  expect(tf.memory().numTensors).toBe(before);
  return out;
}
