/**
 * A pipeline stage worker (a worker thread or a child process, one per device): its own tfjs
 * engine and backend, the stage's layers (stage_model.ts) and their paged KV cache, whose sequence
 * bookkeeping mirrors the main thread's. See protocol.ts.
 */
import '../../lib/backends/node_install.js';  // the native CPU kernels and Dawn WebGPU in this worker
import * as tf from '@tensorflow/tfjs';
import type { DecoderForCausalLM } from '../decoder_lm.js';
import { useBackend } from '../../lib/backends/select.js';
import { registerAllKernels } from '../../kernels/register_all.js';
import { nativeKernels, setCpuKernelImpl } from '../../kernels/cpu/native.js';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache.js';
import type { SeqAction, ShmRef } from '../../lib/sharding/protocol.js';
import { mapRegion } from '../../lib/sharding/shm_region.js';
import { workerPort } from '../../lib/sharding/worker_port.js';
import type { Activations, StageInitMsg, StageMsg, StageReply, StageRunMsg } from './protocol.js';
import { buildStage, forwardStage } from './stage_model.js';

let model: DecoderForCausalLM | null = null;
let cache: PagedKVCache | null = null;
let first = false, last = false;
let seqError: string | null = null;
let fault: { mode: 'throw' | 'exit'; afterRuns: number } | null = null;
let region: { ref: ShmRef; buffer: ArrayBuffer } | null = null;

const port = workerPort();
const reply = (r: StageReply) => port.postMessage(r);
const msgOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

function useRegion(ref: ShmRef): ArrayBuffer {
  if (region?.ref.path !== ref.path) region = { ref, buffer: mapRegion(ref) }; // the old mapping goes with GC
  return region.buffer;
}

/** The floats of slot `a` (n of them) in the bank it names. */
function slotOf(a: Activations, n: number): Float32Array {
  if (a.kind === 'message') return a.data!.subarray(0, n);
  const buf = a.kind === 'sab' ? a.buffer : useRegion(a.ref);
  return new Float32Array(buf, a.slot * a.slotFloats * 4, n);
}

async function init(m: StageInitMsg): Promise<StageReply> {
  await useBackend(m.device.backend);
  const cpu = tf.backend() as unknown as { firstUse?: boolean };
  if (m.device.backend === 'cpu') cpu.firstUse = false;
  registerAllKernels();
  setCpuKernelImpl(m.cpuKernelImpl);
  if (nativeKernels && m.cpuKernelImpl !== 'ts') nativeKernels.setThreads(m.nativeThreads);
  model = buildStage(m.spec);
  cache = model.createCache();
  first = m.spec.first;
  last = m.spec.last;
  let shm: boolean | undefined;
  if (m.shm) {
    try { useRegion(m.shm); shm = true; } catch { shm = false; }
  }
  return { id: m.id, ok: true, backend: tf.getBackend(), shm };
}

function seq(s: SeqAction): void {
  try {
    if (s.action === 'add') cache!.addSequence(s.seqId);
    else if (s.action === 'release') cache!.releaseSequence(s.seqId);
    else cache!.forkSequence(s.srcId, s.dstId);
  } catch (e) {
    seqError ??= `sequence ${s.action} failed: ${msgOf(e)}`;
  }
}

/** One micro-batch through this stage: fetch, compute, commit, write the output. */
async function run(m: StageRunMsg): Promise<StageReply> {
  const t0 = performance.now();
  if (seqError) throw new Error(seqError);
  if (fault && fault.afterRuns-- <= 0) {
    const f = fault.mode;
    fault = null;
    if (f === 'exit') process.exit(7);
    throw new Error(`injected fault (micro-batch ${m.microBatch})`);
  }
  const kv = cache!.fetch(m.seqIds, m.numNewTokens);
  const T = kv.totalTokens, H = model!.config.hiddenSize;
  let out: tf.Tensor;
  let input: tf.Tensor2D | null = null;
  try {
    if (first) out = forwardStage(model!, m.ids!, kv, last ? m.result : 'hidden', m.logitRows);
    else {
      input = tf.tensor2d(slotOf(m.input!, T * H), [T, H]); // [T, hidden], read in place on cpu
      out = forwardStage(model!, input, kv, last ? m.result : 'hidden', m.logitRows);
    }
  } catch (e) {
    cache!.abandon(kv);
    throw e;
  } finally { input?.dispose(); }
  try {
    const data = await out.data();
    cache!.step(kv);
    const r: StageReply = { id: m.id, ok: true };
    if (!last) {
      if (m.output!.kind === 'message') r.hidden = (data as Float32Array).slice();
      else slotOf(m.output!, T * H).set(data as Float32Array);
    } else if (m.result === 'argmax') r.tokens = Int32Array.from(data as Int32Array);
    else r.logits = (data as Float32Array).slice();
    r.computeMs = performance.now() - t0;
    return r;
  } finally { out.dispose(); }
}

// Messages run strictly in order: each waits for the previous one.
let chain: Promise<unknown> = Promise.resolve();
port.on('message', (m: StageMsg) => {
  chain = chain.then(async () => {
    const id = 'id' in m ? m.id : -1;
    try {
      switch (m.op) {
        case 'init': reply(await init(m)); break;
        case 'seq': seq(m.seq); break;
        case 'run': reply(await run(m)); break;
        case 'inspect':
          reply({ id, ok: true, lengths: cache!.sequenceIds.map((s) => [s, cache!.cacheLength(s)]), numFreePages: cache!.numFreePages });
          break;
        case 'fault': fault = { mode: m.mode, afterRuns: m.afterRuns }; break;
        case 'dispose': model?.dispose(); port.close(); break;
      }
    } catch (e) {
      reply({ id, ok: false, error: msgOf(e) });
    }
  });
});
