/**
 * The `wasm` kernels' calls into the WebAssembly SIMD module (kernels/wasm/simd_module.ts,
 * native/wasm/): tensors are passed by heap offset; the paged KV cache (plain JS arrays) has the
 * pages a step reads copied into the heap scratch first, with the page table remapped.
 */
import type { TensorInfo } from '@tensorflow/tfjs';

import { check } from '../../core/errors.js';
import type { PagedKVCollection } from '../../core/paged_kv_store.js';
import { ATTN_ARG } from '../cpu/native_args.js';
import type { WasmSimdInstance } from './simd_module.js';
import { stage, THREAD_MIN_MACS, THREAD_MIN_ROWS, threadedAttention, threadedSgemm, threadedSwiGlu, threadsFor } from './simd_thread_calls.js';

const align16 = (bytes: number) => Math.ceil(bytes / 16) * 16;

/** out[M, N] = op(a) · op(b) (+ bias) (native/wasm/sgemm.c); prefill shapes over the kernel threads where they run. */
export function simdSgemm(w: WasmSimdInstance, a: TensorInfo, b: TensorInfo, bias: TensorInfo | null, out: TensorInfo,
  M: number, N: number, K: number, tA: boolean, tB: boolean): void {
  if (!tA && M > THREAD_MIN_ROWS && M * N * K >= THREAD_MIN_MACS && threadedSgemm(w, a, b, bias, out, M, N, K, tB)) return;
  const scratch = w.scratch(4 * w.exports.sgemm_scratch_floats(M, N, K, tA ? 1 : 0));
  w.exports.sgemm(w.ptr(a), w.ptr(b), bias ? w.ptr(bias) : 0, w.ptr(out), M, N, K, tA ? 1 : 0, tB ? 1 : 0, scratch);
}

/** FusedRMSNorm's rows (native/wasm/decoder_steps.c). */
export function simdRmsNorm(w: WasmSimdInstance, x: TensorInfo, weight: TensorInfo | null, out: TensorInfo,
  T: number, H: number, eps: number, center: boolean): void {
  w.exports.rms_norm(w.ptr(x), weight ? w.ptr(weight) : 0, w.ptr(out), T, H, eps, center ? 1 : 0);
}

export interface SwiGluTensors {
  x: TensorInfo; gate: TensorInfo; up: TensorInfo; down: TensorInfo;
  gateBias?: TensorInfo; upBias?: TensorInfo; downBias?: TensorInfo; residual?: TensorInfo;
}

/** FusedSwiGLUMLP (native/wasm/decoder_steps.c); out must be a fresh tensor. */
export function simdSwiGlu(w: WasmSimdInstance, t: SwiGluTensors, out: TensorInfo, T: number, H: number, I: number): void {
  if (T > THREAD_MIN_ROWS && T * H * I >= THREAD_MIN_MACS && threadedSwiGlu(w, t, out, T, H, I)) return;
  const scratch = w.scratch(4 * w.exports.swiglu_scratch_floats(T, H, I));
  const p = (x: TensorInfo | undefined) => (x ? w.ptr(x) : 0);
  w.exports.swiglu(p(t.x), p(t.gate), p(t.up), p(t.down), p(t.gateBias), p(t.upBias), p(t.downBias), p(t.residual), w.ptr(out),
    T, H, I, scratch);
}

/**
 * FlashAttentionRaggedPaged over a float32 cache (native/wasm/attention.c): the pages the batch reads
 * (each once, shared prefixes included) go to the heap with a remapped page table. Prefill calls run their
 * items (entry, token block, KV head) over the kernel threads where they run (kernels/wasm/simd_thread_calls.ts).
 */
export function simdFlashAttention(w: WasmSimdInstance, q: TensorInfo, out: TensorInfo, kPool: Float32Array, vPool: Float32Array,
  c: PagedKVCollection, ints: Int32Array, scale: number): void {
  const batch = c.seqIds.length, maxPages = c.maxPagesPerSeq, p = c.cache.params;
  const pageFloats = p.nKvHeads * p.pageSize * p.headDim;
  const table = new Int32Array(batch * maxPages), order: number[] = [], slot = new Map<number, number>();
  let maxNew = 0, maxCtx = 0;
  for (let b = 0; b < batch; b++) {
    const ctx = c.startPositions[b] + c.numNewTokens[b];
    maxNew = Math.max(maxNew, c.numNewTokens[b]);
    maxCtx = Math.max(maxCtx, ctx);
    for (let i = 0; i < Math.ceil(ctx / p.pageSize); i++) {
      const page = c.pageTable[b * maxPages + i];
      let s = slot.get(page);
      if (s === undefined) { s = order.length; slot.set(page, s); order.push(page); }
      table[b * maxPages + i] = s;
    }
  }
  const G = ints[ATTN_ARG.N_HEADS] / ints[ATTN_ARG.N_KV], rows = q.shape[0], width = q.shape[1];
  const poolBytes = align16(order.length * pageFloats * 4);
  const intsBytes = align16(4 * (ints.length + 3 * batch + 1 + table.length));
  const kernelBytes = align16(4 * w.exports.flash_scratch_floats(G, p.headDim, maxNew, ints[ATTN_ARG.VARIANT]));
  const t = rows > THREAD_MIN_ROWS && rows * maxCtx * width >= THREAD_MIN_MACS ? threadsFor(w) : null;
  const threads = t ? t.pool.threads : 1, bytes = 2 * poolBytes + intsBytes + threads * kernelBytes;
  let base: number, qAt = w.ptr(q), outAt = w.ptr(out);
  if (t?.mode === 'staged') {
    const s = t.staging!, from = qAt;
    const staged = stage(t, () => { s.beginCall(); return [s.activation(w.heapF32(), from, rows * width), s.alloc(rows * width), s.alloc(bytes / 4)]; });
    if (!staged) { simdFlashAttention(w, q, out, kPool, vPool, c, ints, scale); return; } // the pool is off now: one thread
    [qAt, outAt, base] = staged;
  } else base = w.scratch(bytes);
  const mem = t?.mode === 'staged' ? t.staging!.memory : w.memory; // after the allocations (they may grow it)
  const f32 = new Float32Array(mem.buffer), i32 = new Int32Array(mem.buffer);
  const kAt = base, vAt = base + poolBytes, intsAt = vAt + poolBytes, kernelAt = intsAt + intsBytes;
  order.forEach((page, s) => {
    f32.set(kPool.subarray(page * pageFloats, (page + 1) * pageFloats), kAt / 4 + s * pageFloats);
    f32.set(vPool.subarray(page * pageFloats, (page + 1) * pageFloats), vAt / 4 + s * pageFloats);
  });
  let at = intsAt / 4;
  const put = (a: Int32Array) => { i32.set(a, at); const ptr = at * 4; at += a.length; return ptr; };
  const intsPtr = put(ints), rowPtr = put(c.rowOffsets.subarray(0, batch + 1)), startPtr = put(c.startPositions.subarray(0, batch));
  const newPtr = put(c.numNewTokens.subarray(0, batch)), tablePtr = put(table);
  const args = [qAt, outAt, kAt, vAt, rowPtr, startPtr, newPtr, tablePtr, intsPtr] as const;
  if (!t) { w.exports.flash_attention(...args, scale, kernelAt); return; }
  const ran = threadedAttention(t, args, scale, kernelAt, kernelBytes, newPtr, intsPtr);
  if (ran === 'stopped') { simdFlashAttention(w, q, out, kPool, vPool, c, ints, scale); return; } // the pool is off now: one thread
  if (ran === 'one item') t.exports.flash_attention(...args, scale, kernelAt); // on the pool's memory
  if (t.mode === 'staged') t.staging!.copyOut(outAt, w.heapF32(), w.ptr(out), rows * width);
}

const W = 'FlashAttentionRaggedPaged';

/**
 * What keeps the module inside q's and out's rows and the pools whatever reaches the kernel (the ops
 * validate first; this guards a direct runKernel call, as the addon's arg_checks.h does): heads, rows
 * and pages. Call it before allocating the output (a throw after would leak it).
 */
export function checkSimdAttention(q: TensorInfo, c: PagedKVCollection, ints: Int32Array, kPool: Float32Array, vPool: Float32Array): void {
  const pageFloats = c.cache.params.nKvHeads * c.cache.params.pageSize * c.cache.params.headDim;
  const poolFloats = Math.min(kPool.length, vPool.length);
  const nH = ints[ATTN_ARG.N_HEADS], nKv = ints[ATTN_ARG.N_KV], D = ints[ATTN_ARG.HEAD_DIM], batch = ints[ATTN_ARG.BATCH];
  check(nKv >= 1 && nH % nKv === 0 && D >= 1 && q.shape[1] === nH * D, W, () => `q's width (${q.shape[1]}) must be nHeads (${nH}) x headDim (${D}), nHeads a multiple of nKvHeads (${nKv})`);
  check(D === c.cache.params.headDim && nKv === c.cache.params.nKvHeads && ints[ATTN_ARG.PAGE_SIZE] === c.cache.params.pageSize, W,
    () => `headDim / nKvHeads / pageSize (${D} / ${nKv} / ${ints[ATTN_ARG.PAGE_SIZE]}) must match the cache's (${c.cache.params.headDim} / ${c.cache.params.nKvHeads} / ${c.cache.params.pageSize})`);
  check(c.rowOffsets.length > batch && c.startPositions.length >= batch && c.numNewTokens.length >= batch && c.pageTable.length >= batch * c.maxPagesPerSeq,
    W, () => `collection arrays are shorter than its batch (${batch})`);
  check(c.rowOffsets[0] === 0 && c.rowOffsets[batch] === q.shape[0], W, () => `collection.rowOffsets must run from 0 to q's rows (${q.shape[0]}), got ${c.rowOffsets[0]} .. ${c.rowOffsets[batch]}`);
  for (let b = 0; b < batch; b++) {
    const n = c.numNewTokens[b], start = c.startPositions[b];
    check(n >= 0 && start >= 0 && c.rowOffsets[b + 1] - c.rowOffsets[b] === n, W,
      () => `collection entry ${b}: numNewTokens (${n}) must equal rowOffsets[${b + 1}] - rowOffsets[${b}] (${c.rowOffsets[b + 1] - c.rowOffsets[b]}), startPositions (${start}) >= 0`);
    check(Math.ceil((start + n) / c.cache.params.pageSize) <= c.maxPagesPerSeq, W,
      () => `collection entry ${b}: ${start + n} tokens need more than maxPagesPerSeq (${c.maxPagesPerSeq}) pages`);
    for (let i = 0; i < Math.ceil((start + n) / c.cache.params.pageSize); i++) {
      const page = c.pageTable[b * c.maxPagesPerSeq + i];
      check(Number.isInteger(page) && page >= 0 && (page + 1) * pageFloats <= poolFloats, W,
        () => `collection.pageTable[${b}, ${i}] (${page}) must be a page id of the pools (${Math.floor(poolFloats / pageFloats)} pages)`);
    }
  }
}
