/**
 * A shard worker (a node:worker_threads thread, or a child process): its own tfjs engine and backend, one shard layer and its
 * own PagedKVCache shard, whose sequence bookkeeping mirrors the main thread's. See protocol.ts.
 */
import { parentPort } from 'node:worker_threads';
import '../backends/node_install.js';  // the native CPU kernels and Dawn WebGPU in this worker
import * as tf from '@tensorflow/tfjs';
import { AttentionWithRope } from '../attention/attention_with_rope.js';
import { argsFromConfig } from '../attention/config.js';
import { useBackend } from '../backends/select.js';
import { registerAllKernels } from '../../kernels/register_all.js';
import { nativeKernels, setCpuKernelImpl } from '../../kernels/cpu/native.js';
import type { PagedKVCollection } from '../kv_cache/collection.js';
import { PagedKVCache } from '../kv_cache/paged_kv_cache.js';
import type { CallMsg, CommitMsg, InitMsg, Reply, SeqAction, ShmRef, WorkerMsg } from './protocol.js';
import { mapRegion } from './shm_region.js';

let layer: AttentionWithRope | null = null;
let cache: PagedKVCache | null = null;
let pending: { id: number; kv: PagedKVCollection } | null = null;
let seqError: string | null = null;
let fault: 'throw' | 'exit' | null = null;
/** Process workers over shared memory: the mapped region (remapped when the main process grows it). */
let region: { ref: ShmRef; buffer: ArrayBuffer } | null = null;

function useRegion(ref: ShmRef): ArrayBuffer {
  if (region?.ref.path !== ref.path) region = { ref, buffer: mapRegion(ref) }; // the old mapping goes with GC
  return region.buffer;
}

/**
 * The channel to the main thread: worker_threads' parentPort, or the IPC channel of a child
 * process. A process worker whose parent is gone exits quietly (code 0): no EPIPE trace from a
 * reply or from writing to the inherited stdout / stderr.
 */
const port = parentPort ?? {
  on: (ev: 'message', fn: (m: never) => void) => process.on(ev, fn as (m: unknown) => void),
  postMessage: (r: unknown) => { if (process.connected) process.send!(r, undefined, undefined, (e) => { if (e) process.exit(0); }); },
  close: () => process.disconnect(),
};
if (!parentPort) {
  process.on('disconnect', () => process.exit(0));
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => process.exit(0));
}
const reply = (r: Reply) => port.postMessage(r);
const msgOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

async function init(m: InitMsg): Promise<Reply> {
  await useBackend(m.device.backend);
  const cpu = tf.backend() as unknown as { firstUse?: boolean };
  if (m.device.backend === 'cpu') cpu.firstUse = false; // one "install tfjs-node" banner per process is enough
  registerAllKernels();
  setCpuKernelImpl(m.cpuKernelImpl);
  if (nativeKernels && m.cpuKernelImpl !== 'ts') nativeKernels.setThreads(m.nativeThreads);
  tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', m.forceComposite);
  layer = new AttentionWithRope(argsFromConfig(m.config as tf.serialization.ConfigDict));
  layer.build([null, layer.opts.hiddenSize]);
  layer.setHfWeights(m.weights);
  cache = new PagedKVCache(layer.kvParams);
  if (!m.shm) return { id: m.id, ok: true, backend: tf.getBackend() };
  try {
    useRegion(m.shm);
    return { id: m.id, ok: true, backend: tf.getBackend(), shm: true };
  } catch (e) {
    return { id: m.id, ok: true, backend: tf.getBackend(), shm: false, shmError: msgOf(e) };
  }
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

/** Phase 1: fetch (validates, reserves) and compute into the partial slot; commits nothing. */
async function call(m: CallMsg, slot: number): Promise<Reply> {
  const t0 = performance.now();
  const shm = m.shm ? useRegion(m.shm) : null; // first: a later retry needs the mapping too
  if (seqError) throw new Error(seqError);
  pending = null;
  const kv = cache!.fetch(m.seqIds, m.numNewTokens);
  pending = { id: m.id, kv };
  const H = layer!.opts.hiddenSize, T = kv.totalTokens;
  const rows = m.input instanceof Float32Array ? m.input : new Float32Array(shm ?? m.input!, 0, T * H);
  const hidden = tf.tensor2d(rows, [T, H]); // [T, hidden], read in place on cpu
  let partial: Float32Array | undefined;
  try {
    if (m.materialize) layer!.materializeKvFromHidden(m.layerIdx, hidden, kv);
    else {
      const out = layer!.callRagged(m.layerIdx, hidden, kv); // [T, hidden] partial sum
      try {
        const data = await out.data() as Float32Array;
        if (m.partials) new Float32Array(m.partials, slot * m.slotFloats * 4, T * H).set(data);
        else if (shm) new Float32Array(shm, (1 + slot) * m.shm!.capacity * H * 4, T * H).set(data);
        else partial = data.slice();
      } finally { out.dispose(); }
    }
  } finally { hidden.dispose(); }
  if (fault) {
    const f = fault;
    fault = null;
    if (f === 'exit') process.exit(7);
    throw new Error('injected fault (after this device wrote its K/V slots)');
  }
  return { id: m.id, ok: true, partial, computeMs: performance.now() - t0 };
}

/** Phase 2: commit the step, then sum this worker's rows of every partial into out. */
function commit(m: CommitMsg): Reply {
  if (!pending || pending.id !== m.id) throw new Error(`commit of call ${m.id} but the prepared call is ${pending?.id ?? 'none'}`);
  cache!.step(pending.kv);
  pending = null;
  const r = m.reduce;
  if (r) {
    const out = new Float32Array(r.out);
    const parts = Array.from({ length: r.numSlots }, (_, d) => new Float32Array(r.partials, d * r.slotFloats * 4, r.slotFloats));
    const a = r.rowStart * r.hidden, b = r.rowEnd * r.hidden;
    out.set(parts[0].subarray(a, b), a);
    for (let d = 1; d < parts.length; d++) {
      const p = parts[d];
      for (let i = a; i < b; i++) out[i] += p[i];
    }
  }
  return { id: m.id, ok: true };
}

let slotIndex = 0;
// Messages run strictly in order: each waits for the previous one.
let chain: Promise<unknown> = Promise.resolve();
port.on('message', (m: WorkerMsg & { slot?: number }) => {
  chain = chain.then(async () => {
    const id = 'id' in m ? m.id : -1;
    try {
      switch (m.op) {
        case 'init': slotIndex = m.slot ?? 0; reply(await init(m)); break;
        case 'seq': seq(m.seq); break;
        case 'call': reply(await call(m, slotIndex)); break;
        case 'commit': reply(commit(m)); break;
        case 'inspect':
          reply({ id, ok: true, lengths: cache!.sequenceIds.map((s) => [s, cache!.cacheLength(s)]), numFreePages: cache!.numFreePages });
          break;
        case 'abort':
          if (pending?.id === m.id) { cache!.abandon(pending.kv); pending = null; }
          break;
        case 'fault': fault = m.mode; break;
        case 'dispose': layer?.dispose(); port.close(); break;
      }
    } catch (e) {
      reply({ id, ok: false, error: msgOf(e) });
    }
  });
});
