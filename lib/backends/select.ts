/**
 * Switches tfjs to a backend by name, loading its package first: cpu, wasm, webgpu (in Node
 * through the npm `webgpu` package), webgl (browsers), tensorflow (@tensorflow/tfjs-node, when
 * installed; the layer runs there through its composite path).
 */
import * as tf from '@tensorflow/tfjs';
import { registerAllKernels } from '../../kernels/register_all.js';
import { check } from '../errors.js';
import { silenceNodeBackendBanner } from './quiet_banner.js';
import { prepareWasmSimdKernels } from '../../kernels/wasm/simd_module.js';

/** Starts WebGPU outside a browser (Dawn); installed by the Node entry (lib/backends/node_install.ts). */
export type NodeWebGpuInit = () => Promise<{ ok: boolean; reason?: string }>;
let nodeWebGpuInit: NodeWebGpuInit | null = null;

/** The hook `useBackend('webgpu')` runs outside a browser (the main entry itself reaches no Node built-in). */
export function setNodeWebGpuInit(init: NodeWebGpuInit): void {
  nodeWebGpuInit = init;
}

export const KNOWN_BACKENDS = ['cpu', 'wasm', 'webgpu', 'webgl', 'tensorflow'] as const;

/** Registers every kernel and gradient (kernels/register_all.ts); kept name, `useBackend` runs it. */
export async function registerFusedKernels(): Promise<void> {
  registerAllKernels();
}

/** Makes `name` the active tfjs backend; throws naming the backend and the reason when it cannot. */
export async function useBackend(name: string): Promise<void> {
  check((KNOWN_BACKENDS as readonly string[]).includes(name), 'useBackend', () =>
    `backend '${name}' is not one of ${KNOWN_BACKENDS.join(', ')}`);
  silenceNodeBackendBanner();
  if (name === 'wasm') {
    await import('@tensorflow/tfjs-backend-wasm');
    await prepareWasmSimdKernels(); // compiled asynchronously (browsers limit synchronous compiles on the main thread)
  }
  // Node (navigator exists from Node 21 on, without navigator.gpu) goes through Dawn; browsers have navigator.gpu.
  const inBrowser = typeof window !== 'undefined' && typeof navigator !== 'undefined' && 'gpu' in navigator;
  if (name === 'webgpu' && !inBrowser) {
    const init = nodeWebGpuInit;
    check(init !== null, 'useBackend', () =>
      "backend 'webgpu' outside a browser needs the Node entry: import 'tfjs-attention-rope/node' (it loads Dawn from the npm webgpu package)");
    const r = await init();
    check(r.ok, 'useBackend', () => `backend 'webgpu' has no adapter here${r.reason ? `: ${r.reason}` : ''}`);
  } else if (name === 'webgpu') await import('@tensorflow/tfjs-backend-webgpu');
  if (name === 'tensorflow') {
    const pkg = '@tensorflow/tfjs-node';
    try { await import(pkg); } catch (e) {
      check(false, 'useBackend', () => `backend 'tensorflow' needs ${pkg}, which could not load: ${String(e).split('\n')[0]}`);
    }
  }
  registerAllKernels();
  const ok = await tf.setBackend(name);
  check(ok, 'useBackend', () => `tf.setBackend('${name}') failed`);
  await tf.ready();
}
