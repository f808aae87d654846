/**
 * RopeRagged for the `cpu` backend (host TypeScript on the backend's buffers; the wasm config in
 * kernels/wasm/RopeRagged.ts runs the same function): rotates packed rows x `[T, H*hd]`, row r at
 * position positions[r]; `inverse` rotates by minus the angle.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';

import { RopeRagged, type RopeRaggedAttrs } from '../kernel_names.js';
import { hostIo, type HostBackendName } from './backend_io.js';

/** out = rope(x) on flat rows `[T, width]` (host). */
export function ropeRaggedHost(x: Float32Array, out: Float32Array, width: number, a: RopeRaggedAttrs): void {
  const { headDim: hd, rotaryDim, interleaved, cos, sin } = a.tables;
  const half = rotaryDim / 2, heads = width / hd, sign = a.inverse ? -1 : 1;
  const T = a.positions.length;
  for (let r = 0; r < T; r++) {
    const t0 = a.positions[r] * half;
    for (let h = 0; h < heads; h++) {
      const o = r * width + h * hd;
      for (let i = 0; i < half; i++) {
        const c = cos[t0 + i], s = sign * sin[t0 + i];
        const ia = interleaved ? o + 2 * i : o + i, ib = interleaved ? ia + 1 : ia + half;
        const xa = x[ia], xb = x[ib];
        out[ia] = xa * c - xb * s;
        out[ib] = xb * c + xa * s;
      }
      for (let d = rotaryDim; d < hd; d++) out[o + d] = x[o + d];
    }
  }
}

/** The kernel function for `backendName`. */
export function ropeRaggedKernel(backendName: HostBackendName): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const a = attrs as unknown as RopeRaggedAttrs;
    const x = (inputs as Record<string, TensorInfo>).x;
    const { outs, outValues, inValues } = hostIo(RopeRagged, backendName, backend, [x], [x.shape]);
    ropeRaggedHost(inValues[0], outValues[0], x.shape[1], a);
    return outs[0];
  };
}

export const ropeRaggedCpuConfig: KernelConfig = { kernelName: RopeRagged, backendName: 'cpu', kernelFunc: ropeRaggedKernel('cpu') };
