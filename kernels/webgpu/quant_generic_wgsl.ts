/**
 * The generic WGSL of QuantMatMul on webgpu (any shape, any g_idx): the prefill kernel (one
 * invocation per output element, T > 8) and the first decode kernels, kept for the shapes the
 * vec4 decode kernels (quant_decode_wgsl.ts, quant_gptq_wgsl.ts) do not take: K not a multiple of
 * their unit, e4m3 / int8 blocks narrower than 16 columns, act-order gptq g_idx. Weights widened per
 * element (e4m3 / int8 bytes via extractBits, e2m1 nibbles by table, bf16 / f16 halves via bitcast /
 * unpack2x16float, gptq int4 columns with zeros and g_idx), float32 accumulation; the rows arrive
 * already quantized.
 *
 * Bindings: 0 x, 1 w, 2 scale, 3 zeros, 4 g_idx, 5 bias, 6 params (T K N fmt scaleKind bRows bCols
 * hasBias, f32 bits of weightScale2), 7 out.
 */
export const WG = 64;
export const FORMATS = { e4m3: 0, int8: 1, nvfp4: 2, gptq: 3, bf16: 4, f16: 5 } as const;
export const SCALES = { none: 0, tensor: 1, rowwise: 2, block: 3 } as const;

const HEADER = /* wgsl */`
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> zeros: array<u32>;
@group(0) @binding(4) var<storage, read> gidx: array<i32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read> p: array<i32>; // T K N fmt scaleKind bRows bCols hasBias; f32 bits of weightScale2
@group(0) @binding(7) var<storage, read_write> out: array<f32>;

const E2M1 = array<f32, 8>(0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0);

fn e4m3(b: u32) -> f32 {
  let e = (b >> 3u) & 15u;
  let m = f32(b & 7u);
  if ((b & 127u) == 127u) { return bitcast<f32>(0x7fc00000u | (b & 0u)); } // NaN (runtime: WGSL refuses a constant NaN)
  var v = select(ldexp(1.0 + m / 8.0, i32(e) - 7), m * 0.001953125, e == 0u);
  return select(v, -v, (b & 128u) != 0u);
}

fn e2m1(c: u32) -> f32 { let v = E2M1[c & 7u]; return select(v, -v, (c & 8u) != 0u); }

// weight (n, k) widened, block / per-16 scales applied (row-wide scales applied by the caller)
fn weightAt(n: u32, k: u32, K: u32, N: u32, fmt: i32) -> f32 {
  switch fmt {
    case 0, 1: {
      let word = w[n * ((K + 3u) / 4u) + k / 4u];
      let b = extractBits(word, 8u * (k % 4u), 8u);
      return select(e4m3(b), f32(extractBits(i32(word), 8u * (k % 4u), 8u)), fmt == 1);
    }
    case 2: {
      let word = w[n * ((K + 7u) / 8u) + k / 8u];
      return e2m1(extractBits(word, 4u * (k % 8u), 4u)) * scale[n * (K / 16u) + k / 16u];
    }
    case 3: {
      let g = u32(gidx[k]);
      let q = extractBits(w[(k / 8u) * N + n], 4u * (k % 8u), 4u);
      let z = extractBits(zeros[g * (N / 8u) + n / 8u], 4u * (n % 8u), 4u) + 1u;
      return (f32(q) - f32(z)) * scale[g * N + n];
    }
    case 4: { return bitcast<f32>(extractBits(w[n * ((K + 1u) / 2u) + k / 2u], 16u * (k % 2u), 16u) << 16u); }
    default: {
      let h = unpack2x16float(w[n * ((K + 1u) / 2u) + k / 2u]);
      return select(h.x, h.y, k % 2u == 1u);
    }
  }
}
`;

/** Any T: one invocation per output element (prefill; T > 8). */
export const WGSL = HEADER + /* wgsl */`
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let T = u32(p[0]); let K = u32(p[1]); let N = u32(p[2]);
  let fmt = p[3]; let sk = p[4]; let bR = u32(max(p[5], 1)); let bC = u32(max(p[6], 1));
  let n = gid.x; let t = gid.y;
  if (n >= N || t >= T) { return; }
  let blocks = (K + bC - 1u) / bC;
  var acc = 0.0;
  for (var k = 0u; k < K; k++) {
    var v = weightAt(n, k, K, N, fmt);
    if (sk == 3 && fmt <= 1) { v *= scale[(n / bR) * blocks + k / bC]; }
    acc += x[t * K + k] * v;
  }
  var f = 1.0;
  if (fmt <= 1 && sk == 1) { f = scale[0]; }
  if (fmt <= 1 && sk == 2) { f = scale[n]; }
  if (fmt == 2) { f = bitcast<f32>(p[8]); }
  out[t * N + n] = acc * f + select(0.0, bias[n], p[7] == 1);
}
`;

const RW = 256;
/**
 * T <= 8, byte / nibble / half formats: one workgroup per weight row n (grid x * 32768 + y), its
 * threads read consecutive u32 words of the row (coalesced), widen each once for all T rows, and
 * reduce the T partial sums in workgroup memory.
 */
export const WGSL_ROWS = HEADER + /* wgsl */`
var<workgroup> part: array<f32, ${8 * RW}>;

@compute @workgroup_size(${RW})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let T = u32(p[0]); let K = u32(p[1]); let N = u32(p[2]);
  let fmt = p[3]; let sk = p[4]; let bR = u32(max(p[5], 1)); let bC = u32(max(p[6], 1));
  let n = wid.y * 32768u + wid.x;
  let per = select(select(4u, 8u, fmt == 2), 2u, fmt >= 4);
  let words = (K + per - 1u) / per;
  let blocks = (K + bC - 1u) / bC;
  var acc: array<f32, 8>;
  if (n < N) {
    for (var i = lid; i < words; i += ${RW}u) {
      let word = w[n * words + i];
      for (var j = 0u; j < per; j++) {
        let k = i * per + j;
        if (k >= K) { break; }
        var v: f32;
        switch fmt {
          case 0: { v = e4m3(extractBits(word, 8u * j, 8u)); }
          case 1: { v = f32(extractBits(i32(word), 8u * j, 8u)); }
          case 2: { v = e2m1(extractBits(word, 4u * j, 4u)) * scale[n * (K / 16u) + k / 16u]; }
          case 4: { v = bitcast<f32>(extractBits(word, 16u * j, 16u) << 16u); }
          default: { let h = unpack2x16float(word); v = select(h.x, h.y, j == 1u); }
        }
        if (sk == 3 && fmt <= 1) { v *= scale[(n / bR) * blocks + k / bC]; }
        for (var t = 0u; t < T; t++) { acc[t] += x[t * K + k] * v; }
      }
    }
  }
  for (var t = 0u; t < 8u; t++) { part[t * ${RW}u + lid] = acc[t]; }
  workgroupBarrier();
  for (var s = ${RW / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { for (var t = 0u; t < T; t++) { part[t * ${RW}u + lid] += part[t * ${RW}u + lid + s]; } }
    workgroupBarrier();
  }
  if (n < N && lid < T) {
    var f = 1.0;
    if (fmt <= 1 && sk == 1) { f = scale[0]; }
    if (fmt <= 1 && sk == 2) { f = scale[n]; }
    if (fmt == 2) { f = bitcast<f32>(p[8]); }
    out[lid * N + n] = part[lid * ${RW}u] * f + select(0.0, bias[n], p[7] == 1);
  }
}
`;

/** T <= 8, gptq: one invocation per output column (qweight columns are contiguous: coalesced), all T rows at once. */
export const WGSL_GPTQ = HEADER + /* wgsl */`
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let T = u32(p[0]); let K = u32(p[1]); let N = u32(p[2]);
  let n = gid.x;
  if (n >= N) { return; }
  var acc: array<f32, 8>;
  for (var k0 = 0u; k0 < K; k0 += 8u) {
    let word = w[(k0 / 8u) * N + n];
    for (var j = 0u; j < 8u; j++) {
      let k = k0 + j;
      let g = u32(gidx[k]);
      let z = extractBits(zeros[g * (N / 8u) + n / 8u], 4u * (n % 8u), 4u) + 1u;
      let v = (f32(extractBits(word, 4u * j, 4u)) - f32(z)) * scale[g * N + n];
      for (var t = 0u; t < T; t++) { acc[t] += x[t * K + k] * v; }
    }
  }
  for (var t = 0u; t < T; t++) { out[t * N + n] = acc[t] + select(0.0, bias[n], p[7] == 1); }
}
`;
