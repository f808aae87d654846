/**
 * FusedSwiGLUMLP for the `cpu` backend (and `wasm`, see kernels/wasm/FusedSwiGLUMLP.ts): in the
 * native addon (native/decoder_steps.cc) gate and up through the sgemm (a weight-streaming GEMV
 * for up to 16 rows), silu(gate) * up in place in the addon's scratch, down, bias and residual;
 * one tfjs tensor (the output) instead of eight. Without the addon: TypeScript loops.
 *
 * @example
 * const y = tf.engine().runKernel('FusedSwiGLUMLP', { x, gate, up, down, residual }, {}); // [T, H]
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';

import { check } from '../../core/errors.js';
import { FusedSwiGLUMLP } from '../kernel_names.js';
import { KernelIO } from './backend_io.js';
import { activeNative } from './native.js';
import { simdSwiGlu, type SwiGluTensors } from '../wasm/simd_calls.js';
import { wasmSimdFor } from '../wasm/simd_module.js';

type Shape = readonly number[];
export interface SwiGLUShapes { x: Shape; gate: Shape; up: Shape; down: Shape; gateBias?: Shape; upBias?: Shape; downBias?: Shape; residual?: Shape }

/** Checks every input's shape against x `[T, H]` and gate `[H, I]`; returns `[T, H, I]`. */
export function fusedSwiGluDims(where: string, s: SwiGLUShapes): [number, number, number] {
  check(s.x.length === 2, where, () => `x must be 2-D [T, H], got shape [${s.x}]`);
  const [T, H] = s.x;
  check(s.gate.length === 2 && s.gate[0] === H, where, () => `gate must be [${H}, I] (x's H first), got shape [${s.gate}]`);
  const I = s.gate[1];
  const want = (name: string, got: Shape | undefined, shape: number[]) => {
    if (got === undefined) return;
    check(got.length === shape.length && got.every((d, i) => d === shape[i]), where, () => `${name} must be [${shape}], got shape [${got}]`);
  };
  want('up', s.up, [H, I]);
  want('down', s.down, [I, H]);
  want('gateBias', s.gateBias, [I]);
  want('upBias', s.upBias, [I]);
  want('downBias', s.downBias, [H]);
  want('residual', s.residual, [T, H]);
  return [T, H, I];
}

/** The same MLP in TypeScript loops (no addon); `out` must not alias the inputs. */
export function swigluTs(x: Float32Array, gate: Float32Array, up: Float32Array, down: Float32Array, gb: Float32Array | null,
  ub: Float32Array | null, db: Float32Array | null, residual: Float32Array | null, out: Float32Array, T: number, H: number, I: number): void {
  const g = new Float32Array(I), u = new Float32Array(I);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < I; i++) { g[i] = gb ? gb[i] : 0; u[i] = ub ? ub[i] : 0; }
    for (let k = 0; k < H; k++) {
      const a = x[t * H + k];
      for (let i = 0; i < I; i++) { g[i] += a * gate[k * I + i]; u[i] += a * up[k * I + i]; }
    }
    for (let i = 0; i < I; i++) g[i] = g[i] / (1 + Math.exp(-g[i])) * u[i];
    const o = t * H;
    for (let j = 0; j < H; j++) out[o + j] = (db ? db[j] : 0) + (residual ? residual[o + j] : 0);
    for (let i = 0; i < I; i++) {
      const a = g[i];
      for (let j = 0; j < H; j++) out[o + j] += a * down[i * H + j];
    }
  }
}

const NAMES = ['x', 'gate', 'up', 'down', 'gateBias', 'upBias', 'downBias', 'residual'] as const;

export function makeFusedSwiGluKernel(backendName: 'cpu' | 'wasm'): KernelFunc {
  return ({ inputs, backend }) => {
    const t = inputs as Partial<Record<(typeof NAMES)[number], TensorInfo>>;
    const io: KernelIO = new KernelIO(FusedSwiGLUMLP, backendName, backend);
    for (const n of ['x', 'gate', 'up', 'down'] as const) io.require(t[n], n);
    for (const n of ['gateBias', 'upBias', 'downBias', 'residual'] as const) if (t[n] !== undefined) io.require(t[n], n);
    const [T, H, I] = fusedSwiGluDims(FusedSwiGLUMLP, {
      x: t.x!.shape, gate: t.gate!.shape, up: t.up!.shape, down: t.down!.shape,
      gateBias: t.gateBias?.shape, upBias: t.upBias?.shape, downBias: t.downBias?.shape, residual: t.residual?.shape,
    });
    const out = io.output([T, H], true); // [T, H], every element written
    if (T * H === 0) return out;
    const simd = I > 0 ? wasmSimdFor(backendName, backend, activeNative()?.swiglu !== undefined) : null;
    if (simd) { simdSwiGlu(simd, t as SwiGluTensors, out, T, H, I); return out; } // wasm without the addon
    const v = (n: (typeof NAMES)[number]) => (t[n] ? io.input(t[n], n) : null);
    const [x, gate, up, down, gb, ub, db, res] = NAMES.map(v);
    const o = io.outputValues();
    const native = activeNative();
    if (I === 0) { for (let i = 0; i < T * H; i++) o[i] = (db ? db[i % H] : 0) + (res ? res[i] : 0); return out; }
    if (native?.swiglu) native.swiglu(x!, gate!, up!, down!, gb, ub, db, res, o, T, H, I);
    else swigluTs(x!, gate!, up!, down!, gb, ub, db, res, o, T, H, I);
    return out;
  };
}

export const fusedSwiGluMlpCpuConfig: KernelConfig = { kernelName: FusedSwiGLUMLP, backendName: 'cpu', kernelFunc: makeFusedSwiGluKernel('cpu') };
