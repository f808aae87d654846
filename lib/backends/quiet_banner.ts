/**
 * Keeps tfjs's cpu backend from printing its "Hi, looks like you are running TensorFlow.js in
 * Node.js ... install our node backend" banner, and nothing else.
 *
 * What prints it: `MathBackendCPU.write()` (tfjs-backend-cpu/dist/backend_cpu.js) on its first
 * call when `env().get('IS_NODE')`, through `backend_util.warn`. The ways to silence it:
 * - `tf.enableProdMode()` / `PROD`: also drops every other tfjs warning and debug check (lost:
 *   hides real warnings);
 * - `IS_NODE = false`: changes how tfjs loads files and detects the platform (lost: wrong answers);
 * - clearing the live instance's `firstUse` only (lost: tfjs makes a new instance, banner and all,
 *   when it picks a backend by priority, i.e. when a tensor is made before any setBackend);
 * - the backend's own `firstUse` flag, cleared on the live instance and on every instance the
 *   registered factory makes from now on (kept): only the banner goes, whichever path makes it.
 */
import * as tf from '@tensorflow/tfjs';

type CpuBackend = tf.KernelBackend & { firstUse?: boolean };
type Factory = (() => tf.KernelBackend | Promise<tf.KernelBackend>) & { quietBanner?: true };

/** Clears the cpu backend's one-shot banner; idempotent, a no-op where no cpu backend is registered. */
export function silenceNodeBackendBanner(): void {
  const engine = tf.engine();
  const entry = engine.registryFactory.cpu as { factory: Factory } | undefined;
  if (entry === undefined) return;
  if (!entry.factory.quietBanner) {
    const make = entry.factory;
    const quiet: Factory = () => {
      const made = make();
      if (made instanceof Promise) return made.then((b) => { (b as CpuBackend).firstUse = false; return b; });
      (made as CpuBackend).firstUse = false;
      return made;
    };
    quiet.quietBanner = true;
    entry.factory = quiet;
  }
  const live = engine.registry.cpu as CpuBackend | undefined;
  if (live !== undefined && live.firstUse === true) live.firstUse = false;
}
