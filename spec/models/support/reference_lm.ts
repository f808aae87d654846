/**
 * An independent float64 forward of the Hugging Face decoders (Llama, Mistral, Qwen2, Qwen3,
 * OLMo), written from transformers' modeling code with plain loops: one sequence, no cache,
 * default RoPE (rotate-half). Specs compare the package's models with it on random checkpoints.
 */
import type { Tensor64 } from './tiny_checkpoint';

type W = Map<string, Tensor64>;

/** y[S, out] = x[S, in] · Wᵀ (+ b), W `[out, in]`. */
function linear(x: Float64Array[], w: Tensor64, b?: Tensor64): Float64Array[] {
  const [out, inn] = w.shape;
  return x.map((row) => {
    const y = new Float64Array(out);
    for (let o = 0; o < out; o++) {
      let s = b ? b.data[o] : 0;
      for (let i = 0; i < inn; i++) s += row[i] * w.data[o * inn + i];
      y[o] = s;
    }
    return y;
  });
}

function rms(x: Float64Array, eps: number, w?: Float64Array, off = 0, n = x.length): void {
  let ms = 0;
  for (let i = 0; i < n; i++) ms += x[off + i] ** 2;
  const r = 1 / Math.sqrt(ms / n + eps);
  for (let i = 0; i < n; i++) x[off + i] = x[off + i] * r * (w ? w[i] : 1);
}

function norm(x: Float64Array[], cfg: Record<string, any>, w?: Tensor64): Float64Array[] {
  return x.map((row) => {
    const y = Float64Array.from(row);
    if (cfg.model_type === 'olmo') {
      const mean = y.reduce((a, b) => a + b, 0) / y.length;
      for (let i = 0; i < y.length; i++) y[i] -= mean;
      rms(y, 1e-5);
    } else rms(y, cfg.rms_norm_eps ?? 1e-6, w!.data);
    return y;
  });
}

/** inv_freq of default RoPE, or of Llama 3 scaling (transformers' _compute_llama3_parameters). */
function llama3InvFreq(theta: number, hd: number, sc: Record<string, number> | null | undefined): number[] {
  const inv = Array.from({ length: hd / 2 }, (_, i) => theta ** (-(2 * i) / hd));
  if (!sc || (sc as Record<string, unknown>).rope_type !== 'llama3') return inv;
  const { factor, low_freq_factor: lo, high_freq_factor: hi, original_max_position_embeddings: old } = sc;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < old / hi) return f;
    if (wavelen > old / lo) return f / factor;
    const smooth = (old / wavelen - lo) / (hi - lo);
    return (1 - smooth) * (f / factor) + smooth * f;
  });
}

/** Logits `[S][vocab]` of `ids`. */
export function referenceLogits(cfg: Record<string, any>, w: W, ids: number[]): Float64Array[] {
  const H = cfg.hidden_size, nH = cfg.num_attention_heads, nKv = cfg.num_key_value_heads ?? nH;
  const hd = cfg.head_dim ?? H / nH;
  const theta = cfg.rope_parameters?.rope_theta ?? cfg.rope_theta ?? 10000;
  const invFreq = llama3InvFreq(theta, hd, cfg.rope_parameters ?? cfg.rope_scaling);
  const emb = w.get('model.embed_tokens.weight')!;
  let h = ids.map((t) => Float64Array.from(emb.data.subarray(t * H, (t + 1) * H)));
  const S = ids.length;
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    const g = (n: string) => w.get(p + n);
    const x = norm(h, cfg, g('input_layernorm.weight'));
    let q = linear(x, g('self_attn.q_proj.weight')!, g('self_attn.q_proj.bias'));
    let k = linear(x, g('self_attn.k_proj.weight')!, g('self_attn.k_proj.bias'));
    const v = linear(x, g('self_attn.v_proj.weight')!, g('self_attn.v_proj.bias'));
    if (typeof cfg.clip_qkv === 'number') {
      const c = cfg.clip_qkv;
      for (const m of [q, k, v]) for (const row of m) for (let i = 0; i < row.length; i++) row[i] = Math.min(c, Math.max(-c, row[i]));
    }
    const qn = g('self_attn.q_norm.weight'), kn = g('self_attn.k_norm.weight');
    if (qn && kn) {
      for (const row of q) for (let a = 0; a < nH; a++) rms(row, cfg.rms_norm_eps, qn.data, a * hd, hd);
      for (const row of k) for (let a = 0; a < nKv; a++) rms(row, cfg.rms_norm_eps, kn.data, a * hd, hd);
    }
    const rope = (m: Float64Array[], heads: number) => m.map((row, pos) => {
      const y = Float64Array.from(row);
      for (let a = 0; a < heads; a++) for (let i = 0; i < hd / 2; i++) {
        const ang = pos * invFreq[i];
        const x1 = row[a * hd + i], x2 = row[a * hd + i + hd / 2];
        y[a * hd + i] = x1 * Math.cos(ang) - x2 * Math.sin(ang);
        y[a * hd + i + hd / 2] = x2 * Math.cos(ang) + x1 * Math.sin(ang);
      }
      return y;
    });
    q = rope(q, nH); k = rope(k, nKv);
    const slides = Array.isArray(cfg.layer_types) ? cfg.layer_types[l] === 'sliding_attention'
      : cfg.model_type === 'mistral' ? typeof cfg.sliding_window === 'number'
        : (cfg.model_type === 'qwen2' || cfg.model_type === 'qwen3') && cfg.use_sliding_window && l >= (cfg.max_window_layers ?? 0);
    const win = slides && typeof cfg.sliding_window === 'number' ? cfg.sliding_window : Infinity;
    const att = q.map((qr, i) => {
      const out = new Float64Array(nH * hd);
      for (let a = 0; a < nH; a++) {
        const kvh = Math.floor(a / (nH / nKv));
        const js = [...Array(i + 1).keys()].filter((j) => i - j < win);
        const sc = js.map((j) => { let s = 0; for (let d = 0; d < hd; d++) s += qr[a * hd + d] * k[j][kvh * hd + d]; return s / Math.sqrt(hd); });
        const mx = Math.max(...sc);
        const e = sc.map((s) => Math.exp(s - mx));
        const z = e.reduce((x1, x2) => x1 + x2, 0);
        js.forEach((j, n) => { for (let d = 0; d < hd; d++) out[a * hd + d] += (e[n] / z) * v[j][kvh * hd + d]; });
      }
      return out;
    });
    const o = linear(att, g('self_attn.o_proj.weight')!, g('self_attn.o_proj.bias'));
    h = h.map((row, i) => row.map((val, d) => val + o[i][d]));
    const x2 = norm(h, cfg, g('post_attention_layernorm.weight'));
    const gate = linear(x2, g('mlp.gate_proj.weight')!, g('mlp.gate_proj.bias'));
    const up = linear(x2, g('mlp.up_proj.weight')!, g('mlp.up_proj.bias'));
    const act = gate.map((row, i) => row.map((gv, j) => (gv / (1 + Math.exp(-gv))) * up[i][j]));
    const down = linear(act, g('mlp.down_proj.weight')!, g('mlp.down_proj.bias'));
    h = h.map((row, i) => row.map((val, d) => val + down[i][d]));
  }
  void S;
  const f = norm(h, cfg, w.get('model.norm.weight'));
  return linear(f, w.get(cfg.tie_word_embeddings ? 'model.embed_tokens.weight' : 'lm_head.weight')!);
}
