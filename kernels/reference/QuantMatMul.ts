/**
 * Composite reference of QuantMatMul (kernels/kernel_names.ts) in plain tfjs ops: quantize the
 * input rows exactly as the kernel does (grid rounding by exponent and `tf.round`, which ties to
 * even), widen the packed words (bytes / nibbles / halves by floorDiv + mod, codes -> values by
 * `tf.gather` from a table), scale, then `tf.matMul`. NaN inputs come out NaN (`x - x` carries them).
 */
import * as tf from '@tensorflow/tfjs';

import { bf16ToF32, E2M1_TABLE, E4M3_TABLE, f16ToF32 } from '../../core/fp_formats.js';
import type { QuantMatMulAttrs } from '../kernel_names.js';

/** v rounded to the e4m3 grid (saturating at ±448). */
export function roundE4m3Tensor(v: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const a = tf.abs(v);
    const e0 = tf.floor(tf.div(tf.log(a), Math.LN2));
    const p = tf.pow(2, e0);
    const e = tf.maximum(tf.where(tf.greaterEqual(a, tf.mul(p, 2)), tf.add(e0, 1), tf.where(tf.less(a, p), tf.sub(e0, 1), e0)), -6);
    const quantum = tf.pow(2, tf.sub(e, 3));
    const r = tf.minimum(tf.mul(tf.round(tf.div(a, quantum)), quantum), 448);
    return tf.add(tf.mul(tf.sign(v), r), tf.sub(v, v));
  });
}

/** v rounded to the e2m1 grid {0, .5, 1, 1.5, 2, 3, 4, 6} (saturating at ±6). */
export function roundE2m1Tensor(v: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const a = tf.abs(v);
    const quantum = tf.where(tf.less(a, 2), tf.fill(a.shape, 0.5), tf.where(tf.less(a, 4), tf.onesLike(a), tf.fill(a.shape, 2)));
    const r = tf.minimum(tf.mul(tf.round(tf.div(a, quantum)), quantum), 6);
    return tf.add(tf.mul(tf.sign(v), r), tf.sub(v, v));
  });
}

const safe = (s: tf.Tensor) => tf.where(tf.equal(s, 0), tf.onesLike(s), s);

/** e4m3(x / s) · s with s broadcast against x (s = 0 gives 0). */
function e4m3Scaled(x: tf.Tensor, s: tf.Tensor): tf.Tensor {
  return tf.mul(roundE4m3Tensor(tf.div(x, safe(s))), s);
}

/** Rows x `[T, K]` -> `[T, K/g, g]` groups, padding the last group with zeros. */
function groups(x: tf.Tensor2D, g: number): tf.Tensor3D {
  const [T, K] = x.shape, n = Math.ceil(K / g);
  const padded = n * g === K ? x : tf.pad(x, [[0, 0], [0, n * g - K]]);
  return padded.reshape([T, n, g]);
}
function ungroup(x: tf.Tensor, T: number, K: number): tf.Tensor2D {
  const flat = x.reshape([T, -1]) as tf.Tensor2D;
  return flat.shape[1] === K ? flat : flat.slice([0, 0], [T, K]);
}

/** The activation quantizer of QuantMatMul on x `[T, K]`. */
export function quantizeActivationsReference(x: tf.Tensor2D, a: QuantMatMulAttrs): tf.Tensor2D {
  return tf.tidy((): tf.Tensor2D => {
    const [T, K] = x.shape;
    const maxAbs = (v: tf.Tensor, axis: number) => tf.max(tf.abs(v), axis, true);
    switch (a.activation) {
      case 'none': return x.clone();
      case 'e4m3_static': return e4m3Scaled(x, tf.scalar(a.inputScale)) as tf.Tensor2D;
      case 'e4m3_token': return e4m3Scaled(x, tf.div(maxAbs(x, 1), 448)) as tf.Tensor2D;
      case 'e4m3_group': {
        const g = groups(x, a.actGroup);
        return ungroup(e4m3Scaled(g, tf.div(maxAbs(g, 2), 448)), T, K);
      }
      case 'int8_token': {
        const s = tf.div(maxAbs(x, 1), 127);
        return tf.add(tf.mul(tf.clipByValue(tf.round(tf.div(x, safe(s))), -127, 127), s), tf.sub(x, x)) as tf.Tensor2D;
      }
      case 'nvfp4': {
        const g = groups(x, 16), gs = a.inputScale;
        const b = roundE4m3Tensor(tf.div(tf.div(maxAbs(g, 2), 6), gs)); // [T, K/16, 1]
        const bg = tf.mul(b, gs);
        return ungroup(tf.mul(roundE2m1Tensor(tf.div(g, safe(bg))), bg), T, K);
      }
    }
  });
}

/** Fields of int32 words: `count` fields of `bits` each, low bits first, appended along a new axis. */
function fields(words: tf.Tensor, bits: number, count: number, axis: number): tf.Tensor {
  return tf.tidy(() => {
    const parts: tf.Tensor[] = [];
    // Mask first (tf.bitwiseAnd where the backend has it): some backends (wasm) run int32 floorDiv / mod through
    // float32, exact only while the value has at most 24 significant bits; a masked field has `bits`.
    const masked = tf.getKernel('BitwiseAnd', tf.getBackend()) !== undefined;
    for (let k = 0; k < count; k++) {
      const field = masked ? tf.bitwiseAnd(words as tf.Tensor<tf.Rank>, tf.fill(words.shape, ((2 ** bits - 1) * 2 ** (bits * k)) | 0, 'int32')) : words;
      parts.push(tf.mod(tf.floorDiv(field, tf.scalar(2 ** (bits * k), 'int32')), tf.scalar(2 ** bits, 'int32')));
    }
    return tf.stack(parts, axis);
  });
}

const tables = new Map<string, Float32Array>();
function table(name: 'e4m3' | 'int8' | 'e2m1' | 'bf16' | 'f16'): Float32Array {
  let t = tables.get(name);
  if (!t) {
    t = name === 'e4m3' ? E4M3_TABLE : name === 'e2m1' ? E2M1_TABLE : name === 'int8' ? Float32Array.from({ length: 256 }, (_, b) => (b << 24) >> 24)
      : Float32Array.from({ length: 65536 }, (_, h) => (name === 'bf16' ? bf16ToF32(h) : f16ToF32(h)));
    tables.set(name, t);
  }
  return t;
}

/** The dequantized weight, transposed: `[inDim, outDim]`. */
export function dequantizeWeightReference(weight: tf.Tensor, scale: tf.Tensor | undefined, zeros: tf.Tensor | undefined,
  gIdx: tf.Tensor | undefined, a: QuantMatMulAttrs): tf.Tensor2D {
  return tf.tidy((): tf.Tensor2D => {
    const K = a.inDim, N = a.outDim;
    if (a.weightFormat === 'gptq') {
      const q = fields(weight, 4, 8, 1).reshape([K, N]); // [K, N]
      const z = tf.add(fields(zeros!, 4, 8, 2).reshape([-1, N]), 1); // [groups, N]
      const g = gIdx!.reshape([K]) as tf.Tensor1D;
      return tf.mul(tf.sub(q, tf.gather(z, g, 0)), tf.gather(scale!.reshape([-1, N]), g, 0)).toFloat() as tf.Tensor2D;
    }
    const [bits, count, name] = a.weightFormat === 'nvfp4' ? [4, 8, 'e2m1' as const]
      : a.weightFormat === 'bf16' || a.weightFormat === 'f16' ? [16, 2, a.weightFormat] : [8, 4, a.weightFormat];
    const codes = fields(weight, bits, count, 2).reshape([N, -1]).slice([0, 0], [N, K]); // [N, K]
    let w = tf.gather(tf.tensor1d(table(name)), codes.toInt()); // [N, K]
    if (a.weightFormat === 'nvfp4') {
      w = tf.mul(tf.mul(w, tf.gather(scale!.reshape([N, K / 16]), tf.range(0, K, 1, 'int32').div(16).floor().toInt(), 1)), a.weightScale2);
    } else if (a.weightScale === 'tensor') w = tf.mul(w, scale!.reshape([]));
    else if (a.weightScale === 'rowwise') w = tf.mul(w, scale!.reshape([N, 1]));
    else if (a.weightScale === 'block') {
      const rows = tf.range(0, N, 1, 'int32').div(a.blockRows).floor().toInt();
      const cols = tf.range(0, K, 1, 'int32').div(a.blockCols).floor().toInt();
      w = tf.mul(w, tf.gather(tf.gather(scale!.reshape([Math.ceil(N / a.blockRows), Math.ceil(K / a.blockCols)]), rows, 0), cols, 1));
    }
    return w.transpose() as tf.Tensor2D;
  });
}

/** quantize(x) `[T, K]` · dequantize(W) `[K, N]` (+ bias) -> `[T, N]`. */
export function quantMatMulReference(x: tf.Tensor2D, weight: tf.Tensor, scale: tf.Tensor | undefined, zeros: tf.Tensor | undefined,
  gIdx: tf.Tensor | undefined, bias: tf.Tensor | undefined, a: QuantMatMulAttrs): tf.Tensor2D {
  return tf.tidy((): tf.Tensor2D => {
    const y: tf.Tensor2D = tf.matMul(quantizeActivationsReference(x, a), dequantizeWeightReference(weight, scale, zeros, gIdx, a)); // [T, N]
    return bias ? tf.add(y, bias) as tf.Tensor2D : y as tf.Tensor2D;
  });
}
