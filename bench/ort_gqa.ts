/**
 * Peer (b): ONNX Runtime's fused `com.microsoft` GroupQueryAttention with do_rotary=1, packed QKV
 * input, past K/V in and present K/V out (as a decode loop needs them), cos/sin caches as
 * initializers, 2 intra-op threads (spinning as ORT defaults; BENCH_ORT_SPIN=0 turns it off). The
 * model is built in code (bench/onnx_proto.ts).
 */
import { ONNX_FLOAT, ONNX_INT32, buildModel } from './onnx_proto.js';

type Ort = typeof import('onnxruntime-node');

export async function loadOrt(): Promise<Ort | null> {
  try {
    const m = (await import('onnxruntime-node')) as unknown as Ort & { default?: Ort };
    return (m.default ?? m) as Ort;
  } catch {
    return null;
  }
}

export interface GqaConfig { nHeads: number; nKvHeads: number; headDim: number; cosHalf: Float32Array; sinHalf: Float32Array; maxPositions: number }

export class OrtGqa {
  private constructor(private readonly ort: Ort, private readonly session: import('onnxruntime-node').InferenceSession,
    private readonly cfg: GqaConfig) {}

  static async create(ort: Ort, cfg: GqaConfig): Promise<OrtGqa> {
    const { nHeads, nKvHeads, headDim: D } = cfg, W = (nHeads + 2 * nKvHeads) * D;
    const model = buildModel(
      [{
        opType: 'GroupQueryAttention', domain: 'com.microsoft',
        inputs: ['query', '', '', 'past_key', 'past_value', 'seqlens_k', 'total_sequence_length', 'cos_cache', 'sin_cache'],
        outputs: ['output', 'present_key', 'present_value'],
        attrs: [{ name: 'num_heads', i: nHeads }, { name: 'kv_num_heads', i: nKvHeads }, { name: 'do_rotary', i: 1 },
          { name: 'rotary_interleaved', i: 0 }, { name: 'scale', f: 1 / Math.sqrt(D) }],
      }],
      [
        { name: 'query', elemType: ONNX_FLOAT, dims: ['B', 'S', W] },
        { name: 'past_key', elemType: ONNX_FLOAT, dims: ['B', nKvHeads, 'P', D] },
        { name: 'past_value', elemType: ONNX_FLOAT, dims: ['B', nKvHeads, 'P', D] },
        { name: 'seqlens_k', elemType: ONNX_INT32, dims: ['B'] },
        { name: 'total_sequence_length', elemType: ONNX_INT32, dims: [] },
      ],
      [
        { name: 'output', elemType: ONNX_FLOAT, dims: ['B', 'S', nHeads * D] },
        { name: 'present_key', elemType: ONNX_FLOAT, dims: ['B', nKvHeads, 'T', D] },
        { name: 'present_value', elemType: ONNX_FLOAT, dims: ['B', nKvHeads, 'T', D] },
      ],
      [
        { name: 'cos_cache', dims: [cfg.maxPositions, D / 2], data: cfg.cosHalf },
        { name: 'sin_cache', dims: [cfg.maxPositions, D / 2], data: cfg.sinHalf },
      ],
    );
    const spin = process.env.BENCH_ORT_SPIN ?? '1';
    const session = await ort.InferenceSession.create(model, {
      intraOpNumThreads: 2, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
      extra: { session: { intra_op: { allow_spinning: spin }, inter_op: { allow_spinning: spin } } },
    });
    return new OrtGqa(ort, session, cfg);
  }

  /** Feeds for B sequences of S new tokens each over `past` cached tokens. */
  feeds(qkv: Float32Array, B: number, S: number, pastK: Float32Array, pastV: Float32Array, past: number): Record<string, unknown> {
    const { nHeads, nKvHeads, headDim: D } = this.cfg, T = this.ort.Tensor;
    return {
      query: new T('float32', qkv, [B, S, (nHeads + 2 * nKvHeads) * D]),
      past_key: new T('float32', pastK, [B, nKvHeads, past, D]),
      past_value: new T('float32', pastV, [B, nKvHeads, past, D]),
      seqlens_k: new T('int32', new Int32Array(B).fill(past + S - 1), [B]),
      total_sequence_length: new T('int32', Int32Array.of(past + S), []),
    };
  }

  /** Runs; returns the attention output `[B, S, nHeads * D]`. */
  async run(feeds: Record<string, unknown>): Promise<Float32Array> {
    const r = await this.session.run(feeds as never);
    return r.output.data as Float32Array;
  }
}
