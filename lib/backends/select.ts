/**
 * Switches tfjs to a backend by name, loading its package first: cpu, wasm, webgpu (in Node
 * through the npm `webgpu` package), webgl (browsers), tensorflow (@tensorflow/tfjs-node, when
 * installed; the layer runs there through its composite path).
 */
import * as tf from '@tensorflow/tfjs';
import { registerAllKernels } from '../../kernels/register_all.js';
import { check } from '../errors.js';

export const KNOWN_BACKENDS = ['cpu', 'wasm', 'webgpu', 'webgl', 'tensorflow'] as const;

/** Registers every kernel and gradient (kernels/register_all.ts); kept name, `useBackend` runs it. */
export async function registerFusedKernels(): Promise<void> {
  registerAllKernels();
}

/** Makes `name` the active tfjs backend; throws naming the backend and the reason when it cannot. */
export async function useBackend(name: string): Promise<void> {
  check((KNOWN_BACKENDS as readonly string[]).includes(name), 'useBackend', () =>
    `backend '${name}' is not one of ${KNOWN_BACKENDS.join(', ')}`);
  if (name === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
  // Node (navigator exists from Node 21 on, without navigator.gpu) goes through Dawn; browsers have navigator.gpu.
  const inBrowser = typeof window !== 'undefined' && typeof navigator !== 'undefined' && 'gpu' in navigator;
  if (name === 'webgpu' && !inBrowser) {
    const m = await import('./webgpu_node.js') as { initWebGpuNode(): Promise<boolean | { ok: boolean; reason?: string }> };
    const r = await m.initWebGpuNode();
    const ok = typeof r === 'boolean' ? r : r.ok;
    check(ok, 'useBackend', () => `backend 'webgpu' has no adapter here${typeof r === 'object' && r.reason ? `: ${r.reason}` : ''}`);
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
