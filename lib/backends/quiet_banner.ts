/**
 * Keeps tfjs's cpu backend from printing its "Hi, looks like you are running TensorFlow.js in
 * Node.js ... install our node backend" banner, and nothing else.
 *
 * What prints it: `MathBackendCPU.write()` (tfjs-backend-cpu/dist/backend_cpu.js) on its first
 * call when `env().get('IS_NODE')`, through `backend_util.warn`. The ways to silence it:
 * - `tf.enableProdMode()` / `PROD`: also drops every other tfjs warning and debug check (lost:
 *   hides real warnings);
 * - `IS_NODE = false`: changes how tfjs loads files and detects the platform (lost: wrong answers);
 * - the backend's own `firstUse` flag, cleared before its first write (kept): only the banner goes.
 * `tf.findBackend('cpu')` makes the backend instance without writing to it or making it active.
 */
import * as tf from '@tensorflow/tfjs';

/** Clears the cpu backend's one-shot banner; idempotent, a no-op where no cpu backend is registered. */
export function silenceNodeBackendBanner(): void {
  if (tf.findBackendFactory('cpu') === null) return;
  const cpu = tf.findBackend('cpu') as (tf.KernelBackend & { firstUse?: boolean }) | null;
  if (cpu !== null && cpu.firstUse === true) cpu.firstUse = false;
}
