/**
 * Loads the native CPU kernels (native/build/Release, or `TFJS_ATTENTION_NATIVE_PATH`, e.g. an
 * AVX2 build for A/B) in Node and installs them into the kernels (kernels/cpu/native.ts). Imported
 * for its effect by the Node entry (lib/node.ts); the browser entry never reaches it.
 *
 * @example
 * import 'tfjs-attention-rope/node';   // loads the addon; `useBackend('cpu')` then runs it
 */
import { createRequire } from 'node:module';
import * as path from 'node:path';

import { installNativeKernels, nativeKernels, type NativeKernels } from '../../kernels/cpu/native.js';
import { packageRoot } from '../util/package_root.js';

/** Loads the addon once (later calls return the installed one); null with the reason recorded when it cannot. */
export function loadNativeKernels(): NativeKernels | null {
  if (nativeKernels !== null) return nativeKernels;
  try {
    const req = createRequire(path.join(packageRoot, 'package.json'));
    const override = process.env.TFJS_ATTENTION_NATIVE_PATH;  // another build of the addon (e.g. an AVX2-only one)
    const addon = req(override ? path.resolve(override) : path.join(packageRoot, 'native', 'build', 'Release', 'tfjs_attention_native.node')) as NativeKernels;
    installNativeKernels(addon);
  } catch (e) {
    installNativeKernels(null, (e as Error).message);
  }
  return nativeKernels;
}

loadNativeKernels();
