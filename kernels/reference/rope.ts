/**
 * Composite (plain tfjs ops) building blocks of RopeSplitStoreRagged: split, qk RMSNorm, RoPE.
 * They are differentiable, so they also give the gradient where no hand-written one exists.
 */
import * as tf from '@tensorflow/tfjs';
import type { RopeTables } from '../../core/rope_tables.js';

/** Splits packed qkv rows `[T, (nH + 2 nKv) * hd]` into q `[T, nH*hd]`, k and v `[T, nKv*hd]`. */
export function splitQkv(qkv: tf.Tensor2D, nHeads: number, nKvHeads: number, headDim: number): [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D] {
  const kvDim = nKvHeads * headDim;
  return tf.split(qkv, [nHeads * headDim, kvDim, kvDim], 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
}

/** RMSNorm of each head over headDim: x `[T, H*hd]` -> `[T, H*hd]`. */
export function headRmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D, headDim: number, eps: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [t, width] = x.shape;
    const h = x.reshape([t, width / headDim, headDim]); // [T, H, hd]
    const ms = tf.mean(tf.square(h), -1, true); // [T, H, 1]
    return tf.mul(tf.mul(h, tf.rsqrt(tf.add(ms, eps))), weight).reshape([t, width]) as tf.Tensor2D;
  });
}

/** cos and sin rows `[T, rotaryDim/2]` for the given positions, gathered on the host. */
export function ropeRows(tables: RopeTables, positions: Int32Array): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const half = tables.rotaryDim / 2;
  const cos = new Float32Array(positions.length * half);
  const sin = new Float32Array(positions.length * half);
  for (let r = 0; r < positions.length; r++) {
    cos.set(tables.cos.subarray(positions[r] * half, (positions[r] + 1) * half), r * half);
    sin.set(tables.sin.subarray(positions[r] * half, (positions[r] + 1) * half), r * half);
  }
  return { cos: tf.tensor2d(cos, [positions.length, half]), sin: tf.tensor2d(sin, [positions.length, half]) };
}

/**
 * Rotates x `[T, H*hd]` with cos/sin rows `[T, rotaryDim/2]` (one row per token), in the
 * layout the tables name; dims past rotaryDim pass through.
 */
export function applyRope(x: tf.Tensor2D, cos: tf.Tensor2D, sin: tf.Tensor2D, tables: Pick<RopeTables, 'headDim' | 'rotaryDim' | 'interleaved'>): tf.Tensor2D {
  return tf.tidy(() => {
    const { headDim, rotaryDim, interleaved } = tables;
    const half = rotaryDim / 2;
    const [t, width] = x.shape;
    const heads = width / headDim;
    const h = x.reshape([t, heads, headDim]); // [T, H, hd]
    const rot = rotaryDim === headDim ? h : h.slice([0, 0, 0], [t, heads, rotaryDim]); // [T, H, rot]
    const c = cos.reshape([t, 1, half]); // [T, 1, half]
    const s = sin.reshape([t, 1, half]);
    let rotated: tf.Tensor3D;
    if (interleaved) {
      const pairs = rot.reshape([t, heads, half, 2]); // [T, H, half, 2]
      const [even, odd] = tf.unstack(pairs, 3) as [tf.Tensor3D, tf.Tensor3D]; // [T, H, half]
      const outEven = tf.sub(tf.mul(even, c), tf.mul(odd, s));
      const outOdd = tf.add(tf.mul(odd, c), tf.mul(even, s));
      rotated = tf.stack([outEven, outOdd], 3).reshape([t, heads, rotaryDim]) as tf.Tensor3D;
    } else {
      const [x1, x2] = tf.split(rot, 2, 2) as [tf.Tensor3D, tf.Tensor3D]; // [T, H, half] each
      rotated = tf.concat([tf.sub(tf.mul(x1, c), tf.mul(x2, s)), tf.add(tf.mul(x2, c), tf.mul(x1, s))], 2) as tf.Tensor3D;
    }
    const full = rotaryDim === headDim ? rotated : tf.concat([rotated, h.slice([0, 0, rotaryDim], [t, heads, headDim - rotaryDim])], 2);
    return full.reshape([t, width]) as tf.Tensor2D;
  });
}
