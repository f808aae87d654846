/**
 * WGSL shared by the FlashAttentionRaggedPaged programs: bindings, the `meta` block, masks.
 *
 * `meta` (array<i32>, built by flash_plan.ts):
 *   [0] numTiles  [1] maxPagesPerSeq  [2] window  [3] chunk  [4] batch  [5] pagesOff  [6] tilesOff
 *   [7] numSplits  [8] bitcast<f32>(scale * log2(e))  [9] totalTokens  [10] keys per split
 *   [11] mask code (MASK_CODE)  [12] page size  [13] log2(page size) or -1
 *   (runtime values: one pipeline serves every mask and page size)
 *   [16 + 4b ..] (startPositions[b], numNewTokens[b], rowOffsets[b], 0)
 *   [pagesOff ..] page table `[batch, maxPagesPerSeq]`
 *   [tilesOff ..] (b, first new token of the tile within its sequence) per workgroup tile
 * q / out `[T, NH, HD]` as vec4; kPool / vPool `[numPages, NKV, PS, HD]` read as vec4 through ldK / ldV
 * (kv_format_wgsl.ts: f32, or codes of a compact cache widened in registers).
 * Scores live in the log2 domain (q is pre-scaled by scale * log2(e)), so softmax uses exp2.
 */
import type { MaskVariant } from '../../core/types.js';
import type { KVCacheDType } from '../../core/kv_dtype.js';
import { kvLoadWgsl } from './kv_format_wgsl.js';

/** Masked score; far below any real one but finite, so exp2(NEG - m) is 0 and never NaN. */
export const NEG = '-3.0e38';
/** Running max before any key: finite so that exp2(m_old - m_new) never sees inf - inf. */
export const M_INIT = '-1.0e30';

/** A cache's storage format as the kernels need it. */
export interface KvFormat { dtype: KVCacheDType; kScale: number; vScale: number }

/** `kvBindings` replaces the K/V bindings and ldK / ldV (the packed decode declares its own). */
export function flashPrelude(headDim: number, nHeads: number, nKv: number, kv?: KvFormat, kvBindings?: string): string {
  return /* wgsl */ `
const HD: u32 = ${headDim}u;
const D4: u32 = ${headDim / 4}u;
const NH: u32 = ${nHeads}u;
const NKV: u32 = ${nKv}u;
const G: u32 = ${nHeads / nKv}u;

@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> o: array<vec4<f32>>;
${kvBindings ?? kvLoadWgsl(kv?.dtype ?? 'float32', kv?.kScale ?? 1, kv?.vScale ?? 1)}
@group(0) @binding(4) var<storage, read> mt: array<i32>;

/** Cache row (page, KV head, slot) of key position j of batch entry b, KV head h. */
fn kvRow(b: i32, j: i32, h: u32) -> u32 {
  let ps = mt[12];
  let sh = mt[13];
  var pi = 0;
  var slot = 0;
  if (sh >= 0) { pi = j >> u32(sh); slot = j & (ps - 1); } else { pi = j / ps; slot = j % ps; }
  let page = u32(mt[u32(mt[5] + b * mt[1] + pi)]);
  return (page * NKV + h) * u32(ps) + u32(slot);
}
/** Offset (in vec4) of key position j of batch entry b, KV head h. */
fn kvAddr(b: i32, j: i32, h: u32) -> u32 { return kvRow(b, j, h) * D4; }
`;
}

/**
 * `visible(i, j)` and `keyRange(i0, i1, L)` (keys any of the positions i0..i1 may see), for the
 * mask whose code (lib/types.ts MASK_CODE) is in mt[11]: a branch on a uniform value, so one
 * pipeline serves every mask (fewer shader compiles; the test per score is cheap next to the dots).
 */
export function maskWgsl(): string {
  return /* wgsl */ `
fn visible(i: i32, j: i32) -> bool {
  switch (mt[11]) {
    case 0: { return j <= i; }
    case 2: { return j <= i && i - j < mt[2]; }
    case 3: { return abs(i - j) < mt[2]; }
    case 4: { return j <= i && (i / mt[3]) == (j / mt[3]); }
    default: { return true; }
  }
}
/** Whether every key kb..ke-1 is visible to every position i0..i1 (then no per-score test). */
fn tileFull(i0: i32, i1: i32, kb: i32, ke: i32) -> bool {
  switch (mt[11]) {
    case 0: { return ke - 1 <= i0; }
    case 2: { return ke - 1 <= i0 && i1 - kb < mt[2]; }
    case 3: { return i1 - kb < mt[2] && ke - 1 - i0 < mt[2]; }
    case 4: { return ke - 1 <= i0 && (kb / mt[3]) == (i1 / mt[3]); }
    default: { return true; }
  }
}
fn keyRange(i0: i32, i1: i32, L: i32) -> vec2<i32> {
  switch (mt[11]) {
    case 0: { return vec2<i32>(0, i1 + 1); }
    case 2: { return vec2<i32>(max(0, i0 - mt[2] + 1), i1 + 1); }
    case 3: { return vec2<i32>(max(0, i0 - mt[2] + 1), min(L, i1 + mt[2])); }
    case 4: { return vec2<i32>((i0 / mt[3]) * mt[3], i1 + 1); }
    default: { return vec2<i32>(0, L); }
  }
}
`;
}

/** Host twin of keyRange: keys [lo, hi) that positions i0..i1 of a sequence of L keys may see. */
export function keyRangeHost(variant: MaskVariant, window: number, chunk: number, i0: number, i1: number, L: number): [number, number] {
  switch (variant) {
    case 'causal': return [0, i1 + 1];
    case 'null': return [0, L];
    case 'sliding_window_causal': return [Math.max(0, i0 - window + 1), i1 + 1];
    case 'sliding_window': return [Math.max(0, i0 - window + 1), Math.min(L, i1 + window)];
    case 'chunked_causal': return [Math.floor(i0 / chunk) * chunk, i1 + 1];
  }
}

/** Repeats `f(i)` for i < n, joined by newlines (the generators unroll register tiles this way). */
export function rep(n: number, f: (i: number) => string): string {
  return Array.from({ length: n }, (_, i) => f(i)).join('\n');
}

/**
 * The query row of one-row tile `tile` (tiles of buildMeta(a, 1)), read from the metadata buffer
 * `mt`: returns past the last tile, then defines b, tq, start, L (keys), t (row of q / out),
 * i (its position), range (its visible keys) and qs (the softmax scale, log2 domain).
 */
export function queryRowOfTile(): string {
  return `  if (tile >= u32(mt[0])) { return; }
  let tOff = u32(mt[6]) + 2u * tile;
  let b = mt[tOff];
  let tq = mt[tOff + 1u];
  let sOff = 16u + 4u * u32(b);
  let start = mt[sOff];
  let L = start + mt[sOff + 1u];
  let t = u32(mt[sOff + 2u] + tq);
  let i = start + tq;
  let range = keyRange(i, i, L);
  let qs = bitcast<f32>(mt[8]);`;
}

/**
 * Opening of a decode workgroup (both decode kernels): which (tile = query row, KV head h, split)
 * it owns; defines what queryRowOfTile does, and s0..s1 (the split's keys).
 */
export function decodeItemHeader(): string {
  return `  let nS = u32(mt[7]);
  let tile = wid.x + (wid.z / nS) * 65535u;
  let split = wid.z % nS;
  let h = wid.y;
${queryRowOfTile()}
  let s0 = range.x + i32(split) * mt[10];
  let s1 = min(range.y, s0 + mt[10]);`;
}
