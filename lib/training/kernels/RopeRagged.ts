/**
 * RopeRagged: rotates packed rows x `[T, H*hd]` at given positions (row r at positions[r]) with
 * the host cos/sin tables; `inverse` rotates by minus the angle. A rotation's transpose is its
 * inverse, so the gradient of RopeRagged is RopeRagged with `inverse` flipped (registered below).
 * Host kernel on cpu and wasm; the composite (kernels/reference/rope.ts applyRope) elsewhere.
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import { applyRope, ropeRows } from '../../../kernels/reference/rope.js';
import { hasFusedKernel } from '../../../kernels/ops.js';
import type { RopeTables } from '../../rope/rope_tables.js';
import { hostIo, type HostBackendName } from './io.js';

export const RopeRagged = 'RopeRagged';

export interface RopeRaggedAttrs {
  tables: RopeTables;
  /** `[T]` position of each row. */
  positions: Int32Array;
  inverse: boolean;
}

/** out = rope(x) on flat rows (host). */
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

function kernel(backendName: HostBackendName): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const a = attrs as unknown as RopeRaggedAttrs;
    const x = (inputs as Record<string, TensorInfo>).x;
    const { outs, outValues, inValues } = hostIo(RopeRagged, backendName, backend, [x], [x.shape]);
    ropeRaggedHost(inValues[0], outValues[0], x.shape[1], a);
    return outs[0];
  };
}

export const ropeRaggedConfigs: KernelConfig[] = (['cpu', 'wasm'] as const).map((b) => ({ kernelName: RopeRagged, backendName: b, kernelFunc: kernel(b) }));

export const ropeRaggedGrad: tf.GradConfig = {
  kernelName: RopeRagged,
  gradFunc: (dy, _saved, attrs) => {
    const a = attrs as unknown as RopeRaggedAttrs;
    return { x: () => ropeRagged(dy as tf.Tensor2D, a.tables, a.positions, !a.inverse) };
  },
};

/**
 * Rotates x `[T, H*hd]`, row r at position positions[r]; differentiable.
 *
 * @example
 * const qr = ropeRagged(q, rope.tables(), new Int32Array([0, 1, 2, 0, 1])); // [5, H*hd]
 */
export function ropeRagged(x: tf.Tensor2D, tables: RopeTables, positions: Int32Array, inverse = false): tf.Tensor2D {
  if (hasFusedKernel(RopeRagged)) {
    return tf.engine().runKernel(RopeRagged, { x }, { tables, positions, inverse } as unknown as tf.NamedAttrMap) as tf.Tensor2D;
  }
  return tf.tidy(() => {
    const { cos, sin } = ropeRows(tables, positions); // [T, rot/2]
    return applyRope(x, cos, inverse ? tf.neg(sin) : sin, tables);
  });
}
