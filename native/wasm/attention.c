/*
 * FlashAttentionRaggedPaged on wasm32 SIMD128 (float32 cache), single thread: the browser's attention
 * (kernels/wasm/simd_attention.ts). The algorithm of kernels/cpu/flash_attention_ts.ts and native/attention.cc:
 * - an item is (sequence b, KV head h, query rows [t0, t1)); its rows are the pairs (token t, group
 *   head g), so every K/V row is read once for all G query heads of the group;
 * - keys go in blocks of NK with online softmax; each row's mask is a contiguous key range [lo, hi],
 *   blocks outside the union of the rows' ranges are skipped (causal block skipping);
 * - prefill: items of max(1, 64 / G) tokens; decode (variant decode, or auto with newTokens * G <= 16):
 *   one item per (b, h) with every new token, keys in one pass (no split: one thread).
 * ints: ATTN_ARG (native/kernel_args.h). Scratch: flash_scratch_floats. The pools are
 * `[pages, nKv, pageSize, headDim]`; the caller may hand gathered pages with a remapped page table.
 */
#include "simd.h"

#define NK 64
enum { A_BATCH, A_N_HEADS, A_N_KV, A_HEAD_DIM, A_PAGE_SIZE, A_MAX_PAGES, A_MASK, A_WINDOW, A_CHUNK, A_VARIANT };

typedef struct {
  const int* ints;
  const float *q, *k, *v;
  const int *rowOffsets, *startPositions, *numNewTokens, *pageTable;
  float scale;
  int G, D;
  float *qs, *o, *s, *mr, *lr;
  int *lo, *hi, *kOff;
} Attn;

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

static int rows_per_item(int G, int maxNew, int decode) { return decode ? maxNew * G : imax(1, 64 / G) * G; }

static int is_decode(const int* ints, int maxNew, int G) {
  return ints[A_VARIANT] == 2 || (ints[A_VARIANT] == 0 && maxNew * G <= 16);
}

EXPORT(flash_scratch_floats) int flash_scratch_floats(int G, int D, int maxNew, int variant) {
  const int decode = variant == 2 || (variant == 0 && maxNew * G <= 16);
  const int M = rows_per_item(G, maxNew, decode);
  return M * (2 * D + NK + 4) + NK;
}

/* The keys row at query position qp may see, [lo, hi] (mask codes: core/types.ts MASK_CODE). */
static void key_range(const int* ints, int qp, int ctx, int* lo, int* hi) {
  const int W = ints[A_WINDOW], C = ints[A_CHUNK];
  switch (ints[A_MASK]) {
    case 0: *lo = 0; *hi = qp; break;
    case 1: *lo = 0; *hi = ctx - 1; break;
    case 2: *lo = imax(0, qp - W + 1); *hi = qp; break;
    case 3: *lo = imax(0, qp - W + 1); *hi = imin(ctx - 1, qp + W - 1); break;
    default: *lo = (qp / C) * C; *hi = qp; break;
  }
}

/* Online softmax step of row m over block scores n0..n1: scores -> probabilities, rescales sum and output. */
static void softmax_row(Attn* a, int m, int n0, int n1) {
  float* s = a->s + m * NK;
  float bmax = -__builtin_inff();
  for (int n = n0; n <= n1; n++) { const float x = s[n]; if (x > bmax || x != x) bmax = x; }
  const float mold = a->mr[m], mnew = mold > bmax ? mold : bmax;
  const float alpha = sexp(mold - mnew);
  const vf mv = vsplat(mnew);
  vf sum = vsplat(0);
  int n = n0;
  for (; n + 4 <= n1 + 1; n += 4) {
    vf p = vexp(wasm_f32x4_sub(wasm_v128_load(s + n), mv));
    wasm_v128_store(s + n, p);
    sum = wasm_f32x4_add(sum, p);
  }
  float lsum = hsum(sum);
  for (; n <= n1; n++) { const float p = sexp(s[n] - mnew); s[n] = p; lsum += p; }
  a->lr[m] = a->lr[m] * alpha + lsum;
  a->mr[m] = mnew;
  if (alpha != 1.0f) {
    float* o = a->o + m * a->D;
    for (int d = 0; d < a->D; d++) o[d] *= alpha;
  }
}

/* Scores of rows q0..q3 against key rows k0, k1 (D4 lanes of D, multiple of 4) into x[8]: two keys a pass. */
static inline void dot4x2(const float* q0, const float* q1, const float* q2, const float* q3, const float* k0, const float* k1,
    int D4, float x[8]) {
  vf a0 = vsplat(0), a1 = vsplat(0), a2 = vsplat(0), a3 = vsplat(0);
  vf b0 = vsplat(0), b1 = vsplat(0), b2 = vsplat(0), b3 = vsplat(0);
  for (int d = 0; d < D4; d += 4) {
    const vf u = vload(k0 + d), w = vload(k1 + d);
    vf q = vload(q0 + d); a0 = vmadd(q, u, a0); b0 = vmadd(q, w, b0);
    q = vload(q1 + d); a1 = vmadd(q, u, a1); b1 = vmadd(q, w, b1);
    q = vload(q2 + d); a2 = vmadd(q, u, a2); b2 = vmadd(q, w, b2);
    q = vload(q3 + d); a3 = vmadd(q, u, a3); b3 = vmadd(q, w, b3);
  }
  x[0] = hsum(a0); x[1] = hsum(a1); x[2] = hsum(a2); x[3] = hsum(a3);
  x[4] = hsum(b0); x[5] = hsum(b1); x[6] = hsum(b2); x[7] = hsum(b3);
}

/*
 * Rows m .. m+r-1 (r <= 4, one token: same key range) over block keys n0..n1 (key offsets kOff).
 * Q·Kᵀ two keys a pass and P·V eight output lanes a pass (8 accumulators each; one key / four lanes a pass
 * was the version before: 5 loads per 4 multiply-adds against 3 per 4).
 */
static void rows(Attn* a, int m, int r, int n0, int n1) {
  const int D = a->D, D4 = D & ~3;
  const float* q0 = a->qs + m * D;
  const float* q1 = r > 1 ? q0 + D : q0;
  const float* q2 = r > 2 ? q0 + 2 * D : q0;
  const float* q3 = r > 3 ? q0 + 3 * D : q0;
  float *s0 = a->s + m * NK, *s1 = s0 + NK, *s2 = s1 + NK, *s3 = s2 + NK;
  for (int n = n0; n <= n1; n += 2) {
    const int two = n + 1 <= n1;
    const float* k0 = a->k + a->kOff[n];
    const float* k1 = two ? a->k + a->kOff[n + 1] : k0;
    float x[8];
    dot4x2(q0, q1, q2, q3, k0, k1, D4, x);
    for (int d = D4; d < D; d++) {
      x[0] += q0[d] * k0[d]; x[1] += q1[d] * k0[d]; x[2] += q2[d] * k0[d]; x[3] += q3[d] * k0[d];
      x[4] += q0[d] * k1[d]; x[5] += q1[d] * k1[d]; x[6] += q2[d] * k1[d]; x[7] += q3[d] * k1[d];
    }
    s0[n] = x[0];
    if (r > 1) s1[n] = x[1];
    if (r > 2) s2[n] = x[2];
    if (r > 3) s3[n] = x[3];
    if (two) {
      s0[n + 1] = x[4];
      if (r > 1) s1[n + 1] = x[5];
      if (r > 2) s2[n + 1] = x[6];
      if (r > 3) s3[n + 1] = x[7];
    }
  }
  for (int i = 0; i < r; i++) softmax_row(a, m + i, n0, n1);
  const float* p0 = s0;
  const float* p1 = r > 1 ? s1 : s0;
  const float* p2 = r > 2 ? s2 : s0;
  const float* p3 = r > 3 ? s3 : s0;
  float* o0 = a->o + m * D;
  int d = 0;
  for (; d + 8 <= D4; d += 8) {
    vf y0 = vsplat(0), y1 = vsplat(0), y2 = vsplat(0), y3 = vsplat(0);
    vf z0 = vsplat(0), z1 = vsplat(0), z2 = vsplat(0), z3 = vsplat(0);
    for (int n = n0; n <= n1; n++) {
      const float* vr = a->v + a->kOff[n] + d;
      const vf u = vload(vr), w = vload(vr + 4);
      vf p = vsplat_at(p0 + n); y0 = vmadd(p, u, y0); z0 = vmadd(p, w, z0);
      p = vsplat_at(p1 + n); y1 = vmadd(p, u, y1); z1 = vmadd(p, w, z1);
      p = vsplat_at(p2 + n); y2 = vmadd(p, u, y2); z2 = vmadd(p, w, z2);
      p = vsplat_at(p3 + n); y3 = vmadd(p, u, y3); z3 = vmadd(p, w, z3);
    }
    vstore(o0 + d, wasm_f32x4_add(vload(o0 + d), y0)); vstore(o0 + d + 4, wasm_f32x4_add(vload(o0 + d + 4), z0));
    if (r > 1) { vstore(o0 + D + d, wasm_f32x4_add(vload(o0 + D + d), y1)); vstore(o0 + D + d + 4, wasm_f32x4_add(vload(o0 + D + d + 4), z1)); }
    if (r > 2) { vstore(o0 + 2 * D + d, wasm_f32x4_add(vload(o0 + 2 * D + d), y2)); vstore(o0 + 2 * D + d + 4, wasm_f32x4_add(vload(o0 + 2 * D + d + 4), z2)); }
    if (r > 3) { vstore(o0 + 3 * D + d, wasm_f32x4_add(vload(o0 + 3 * D + d), y3)); vstore(o0 + 3 * D + d + 4, wasm_f32x4_add(vload(o0 + 3 * D + d + 4), z3)); }
  }
  for (; d < D4; d += 4) {
    vf y0 = vsplat(0), y1 = vsplat(0), y2 = vsplat(0), y3 = vsplat(0);
    for (int n = n0; n <= n1; n++) {
      const vf vv = vload(a->v + a->kOff[n] + d);
      y0 = vmadd(vsplat_at(p0 + n), vv, y0); y1 = vmadd(vsplat_at(p1 + n), vv, y1);
      y2 = vmadd(vsplat_at(p2 + n), vv, y2); y3 = vmadd(vsplat_at(p3 + n), vv, y3);
    }
    vstore(o0 + d, wasm_f32x4_add(vload(o0 + d), y0));
    if (r > 1) vstore(o0 + D + d, wasm_f32x4_add(vload(o0 + D + d), y1));
    if (r > 2) vstore(o0 + 2 * D + d, wasm_f32x4_add(vload(o0 + 2 * D + d), y2));
    if (r > 3) vstore(o0 + 3 * D + d, wasm_f32x4_add(vload(o0 + 3 * D + d), y3));
  }
  for (d = D4; d < D; d++)
    for (int i = 0; i < r; i++) {
      float acc = 0;
      for (int n = n0; n <= n1; n++) acc += a->s[(m + i) * NK + n] * a->v[a->kOff[n] + d];
      o0[i * D + d] += acc;
    }
}

/* Rows of tokens [t0, t1) of entry b, KV head h, over every key they see; writes their output rows. */
static void item(Attn* a, int b, int h, int t0, int t1, float* out) {
  const int* ints = a->ints;
  const int G = a->G, D = a->D, nH = ints[A_N_HEADS], nKv = ints[A_N_KV], ps = ints[A_PAGE_SIZE];
  const int M = (t1 - t0) * G, start = a->startPositions[b], ctx = start + a->numNewTokens[b], row0 = a->rowOffsets[b];
  const int* pages = a->pageTable + b * ints[A_MAX_PAGES];
  int kmin = ctx, kmax = -1;
  for (int m = 0; m < M; m++) {
    const int t = t0 + m / G, g = m % G;
    const float* src = a->q + ((long)(row0 + t) * nH + h * G + g) * D;
    for (int d = 0; d < D; d++) a->qs[m * D + d] = src[d] * a->scale;
    int x, z;
    key_range(ints, start + t, ctx, &x, &z);
    z = imin(z, ctx - 1);
    a->lo[m] = x; a->hi[m] = z;
    if (x <= z) { kmin = imin(kmin, x); kmax = imax(kmax, z); }
    a->mr[m] = -__builtin_inff(); a->lr[m] = 0;
  }
  for (int i = 0; i < M * D; i++) a->o[i] = 0;
  for (int kb = kmin; kb <= kmax; kb += NK) {
    const int nk = imin(NK, kmax + 1 - kb);
    for (int n = 0; n < nk; n++) {
      const int pos = kb + n;
      a->kOff[n] = ((pages[pos / ps] * nKv + h) * ps + pos % ps) * D;
    }
    for (int m0 = 0; m0 < M; m0 += G) {
      const int n0 = imax(a->lo[m0], kb) - kb, n1 = imin(a->hi[m0], kb + nk - 1) - kb;
      if (n0 > n1) continue;
      for (int g = 0; g < G; g += 4) rows(a, m0 + g, imin(4, G - g), n0, n1);
    }
  }
  for (int m = 0; m < M; m++) {
    const int t = t0 + m / G, g = m % G;
    float* dst = out + ((long)(row0 + t) * nH + h * G + g) * D;
    const float inv = a->lr[m] > 0 ? 1.0f / a->lr[m] : 0.0f;
    for (int d = 0; d < D; d++) dst[d] = a->o[m * D + d] * inv;
  }
}

/* Sets up a over the call's arguments; returns the query tokens an item takes (0: nothing to do). */
static int setup(Attn* a, const float* q, const float* kPool, const float* vPool, const int* rowOffsets, const int* startPositions,
    const int* numNewTokens, const int* pageTable, const int* ints, float scale, float* scratch) {
  a->ints = ints; a->q = q; a->k = kPool; a->v = vPool; a->scale = scale;
  a->rowOffsets = rowOffsets; a->startPositions = startPositions; a->numNewTokens = numNewTokens; a->pageTable = pageTable;
  a->G = ints[A_N_HEADS] / ints[A_N_KV]; a->D = ints[A_HEAD_DIM];
  const int batch = ints[A_BATCH], G = a->G, D = a->D;
  int maxNew = 0;
  for (int b = 0; b < batch; b++) maxNew = imax(maxNew, numNewTokens[b]);
  if (maxNew == 0) return 0;
  const int decode = is_decode(ints, maxNew, G), M = rows_per_item(G, maxNew, decode);
  a->qs = scratch; a->o = a->qs + M * D; a->s = a->o + M * D; a->mr = a->s + M * NK; a->lr = a->mr + M;
  a->lo = (int*)(a->lr + M); a->hi = a->lo + M; a->kOff = a->hi + M;
  return decode ? maxNew : imax(1, 64 / G);
}

/*
 * Items i0 .. i1 of the call, in the order (entry b, token block, KV head): one thread's share
 * (kernels/wasm/simd_thread_calls.ts); items write disjoint output rows. Scratch: flash_scratch_floats per thread.
 */
EXPORT(flash_attention_items) void flash_attention_items(const float* q, float* out, const float* kPool, const float* vPool,
    const int* rowOffsets, const int* startPositions, const int* numNewTokens, const int* pageTable,
    const int* ints, float scale, float* scratch, int i0, int i1) {
  Attn a;
  const int bq = setup(&a, q, kPool, vPool, rowOffsets, startPositions, numNewTokens, pageTable, ints, scale, scratch);
  if (bq == 0) return;
  const int batch = ints[A_BATCH], nKv = ints[A_N_KV];
  int i = 0;
  for (int b = 0; b < batch && i < i1; b++) {
    const int n = numNewTokens[b], items = (n + bq - 1) / bq * nKv;
    if (i + items <= i0) { i += items; continue; }
    for (int t0 = 0; t0 < n; t0 += bq)
      for (int h = 0; h < nKv; h++, i++)
        if (i >= i0 && i < i1) item(&a, b, h, t0, imin(n, t0 + bq), out);
  }
}

/* Every item (the one-thread call). */
EXPORT(flash_attention) void flash_attention(const float* q, float* out, const float* kPool, const float* vPool,
    const int* rowOffsets, const int* startPositions, const int* numNewTokens, const int* pageTable,
    const int* ints, float scale, float* scratch) {
  flash_attention_items(q, out, kPool, vPool, rowOffsets, startPositions, numNewTokens, pageTable, ints, scale, scratch, 0, 0x7fffffff);
}

/* How many items a call has (0: none; decode calls have one per entry and KV head). */
EXPORT(flash_attention_item_count) int flash_attention_item_count(const int* numNewTokens, const int* ints) {
  const int batch = ints[A_BATCH], G = ints[A_N_HEADS] / ints[A_N_KV];
  int maxNew = 0, count = 0;
  for (int b = 0; b < batch; b++) maxNew = imax(maxNew, numNewTokens[b]);
  if (maxNew == 0) return 0;
  const int bq = is_decode(ints, maxNew, G) ? maxNew : imax(1, 64 / G);
  for (int b = 0; b < batch; b++) count += (numNewTokens[b] + bq - 1) / bq * ints[A_N_KV];
  return count;
}
