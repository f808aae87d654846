/**
 * The QuantMatMul bench cases shared by the cpu bench (bench/quant.ts) and the WebGPU bench
 * (bench/quant_webgpu.ts): every weight format of issue 12 with its packed sizes for a `[K, N]`
 * weight and its decode target (float32 time / quantized time), and the random packed words.
 */
import type { QuantMatMulAttrs } from '../kernels/kernel_names.js';

export type QuantCase = { name: string; attrs: Partial<QuantMatMulAttrs>; words: number; scales: number; zeros?: number; target: number };

/** Every format's case for an N x K weight. */
export function quantCases(N: number, K: number): QuantCase[] {
  return [
    { name: 'fp8 (e4m3 rowwise, per-token)', attrs: { weightFormat: 'e4m3', weightScale: 'rowwise', activation: 'e4m3_token' }, words: N * K / 4, scales: N, target: 2.5 },
    { name: 'fp8 block 128', attrs: { weightFormat: 'e4m3', weightScale: 'block', blockRows: 128, blockCols: 128, activation: 'e4m3_group', actGroup: 128 }, words: N * K / 4, scales: (N / 128) * (K / 128), target: 2.5 },
    { name: 'int8 w8a8', attrs: { weightFormat: 'int8', weightScale: 'rowwise', activation: 'int8_token' }, words: N * K / 4, scales: N, target: 2.5 },
    { name: 'nvfp4', attrs: { weightFormat: 'nvfp4', weightScale: 'block', blockRows: 1, blockCols: 16, activation: 'nvfp4', actGroup: 16, inputScale: 0.01 }, words: N * K / 8, scales: N * K / 16, target: 4 },
    { name: 'gptq int4 (g=128)', attrs: { weightFormat: 'gptq', weightScale: 'block', blockRows: 1, blockCols: 128 }, words: N * K / 8, scales: (K / 128) * N, zeros: (K / 128) * N / 8, target: 4 },
    { name: 'bf16', attrs: { weightFormat: 'bf16', weightScale: 'none' }, words: N * K / 2, scales: 0, target: 1.7 },
    { name: 'f16', attrs: { weightFormat: 'f16', weightScale: 'none' }, words: N * K / 2, scales: 0, target: 1.7 },
  ];
}

/** `n` random packed words; e4m3 codes kept small and finite, halves finite and below 1. */
export function randomWords(n: number, fmt: string): Int32Array {
  const w = new Int32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) | 0;
    let v = s;
    if (fmt === 'e4m3') v &= 0x3e3e3e3e; // small finite codes (no NaN)
    if (fmt === 'bf16' || fmt === 'f16') v &= 0x3bff3bff; // finite halves below 1
    w[i] = v;
  }
  return w;
}

