/**
 * A shard worker (a node:worker_threads thread, or a child process): its own tfjs engine and backend, one shard layer and its
 * own PagedKVCache shard, whose sequence bookkeeping mirrors the main thread's. See protocol.ts.
 */
import '../backends/node_install.js';  // the native CPU kernels and Dawn WebGPU in this worker
import * as tf from '@tensorflow/tfjs';
import { AttentionWithRope } from '../attention/attention_with_rope.js';
import { argsFromConfig } from '../attention/config.js';
import { useBackend } from '../backends/select.js';
import { registerAllKernels } from '../../kernels/register_all.js';
import { nativeKernels, setCpuKernelImpl } from '../../kernels/cpu/native.js';
import type { PagedKVCollection } from '../kv_cache/collection.js';
import { PagedKVCache } from '../kv_cache/paged_kv_cache.js';
import type { CallMsg, CommitMsg, InitMsg, ReduceMsg, Reply, SeqAction, ShmRef, WorkerMsg } from './protocol.js';
import { reduceRange, slotView, writePartial } from './partials.js';
import { mapRegion } from './shm_region.js';
import { workerPort } from './worker_port.js';

let layer: AttentionWithRope | null = null;
let cache: PagedKVCache | null = null;
let pending: { id: number; kv: PagedKVCollection } | null = null;
let seqError: string | null = null;
let fault: { mode: 'throw' | 'exit'; phase: 'call' | 'reduce' } | null = null;
/** Process workers over shared memory: the mapped region (remapped when the main process grows it). */
let region: { ref: ShmRef; buffer: ArrayBuffer } | null = null;

function useRegion(ref: ShmRef): ArrayBuffer {
  if (region?.ref.path !== ref.path) region = { ref, buffer: mapRegion(ref) }; // the old mapping goes with GC
  return region.buffer;
}

const port = workerPort();
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
  let partial: Float32Array | Uint16Array | undefined;
  try {
    if (m.materialize) layer!.materializeKvFromHidden(m.layerIdx, hidden, kv);
    else {
      // Where the partial goes: this worker's slot (threads: the partials buffer; processes: the region) or the reply.
      const dst = m.partials ?? shm ?? (partial = m.partialDtype === 'float16' ? new Uint16Array(T * H) : new Float32Array(T * H)).buffer;
      const byteOffset = m.partials ? slot * m.slotFloats * 4 : shm ? (1 + slot) * m.shm!.capacity * H * 4 : 0;
      await projectInChunks(m.layerIdx, hidden, kv, m.chunkRows, (data, row0) => writePartial(data, dst, byteOffset, row0 * H, m.partialDtype));
    }
  } finally { hidden.dispose(); }
  takeFault('call');
  return { id: m.id, ok: true, partial, computeMs: performance.now() - t0 };
}

/**
 * Attention, then the output projection by row chunks of `chunkRows` (0: one piece): each
 * chunk's readback is started before the next chunk is queued, so on a GPU the copy and the
 * host write of chunk c overlap the projection of chunk c + 1.
 */
async function projectInChunks(layerIdx: number, hidden: tf.Tensor2D, kv: PagedKVCollection, chunkRows: number,
  write: (data: Float32Array, row0: number) => void): Promise<void> {
  const T = kv.totalTokens;
  if (chunkRows <= 0 || chunkRows >= T) {
    const out = layer!.callRagged(layerIdx, hidden, kv); // [T, hidden] partial sum
    try { write(await out.data() as Float32Array, 0); } finally { out.dispose(); }
    return;
  }
  const attn = layer!.attendRagged(layerIdx, hidden, kv); // [T, qDim]
  const reads: Promise<void>[] = [];
  try {
    for (let r0 = 0; r0 < T; r0 += chunkRows) {
      const n = Math.min(chunkRows, T - r0);
      const y = tf.tidy(() => layer!.oProj!.apply(attn.slice([r0, 0], [n, attn.shape[1]])) as tf.Tensor2D); // [n, hidden]
      reads.push(y.data().then((d) => write(d as Float32Array, r0)).finally(() => y.dispose()));
    }
    await Promise.all(reads);
  } finally { attn.dispose(); }
}

/** Phase 2: sum this worker's rows of every partial into the output (threads: `out`; processes: the region's input area). */
function reduce(m: ReduceMsg): Reply {
  if (!pending || pending.id !== m.id) throw new Error(`reduce of call ${m.id} but the prepared call is ${pending?.id ?? 'none'}`);
  const t0 = performance.now();
  const buf = m.partials ?? region!.buffer;
  const capFloats = m.partials ? m.slotFloats : region!.ref.capacity * m.hidden;
  const base = m.partials ? 0 : 1; // process slots follow the input area
  const out = m.out ? new Float32Array(m.out) : new Float32Array(region!.buffer, 0, capFloats);
  const slots = Array.from({ length: m.numSlots }, (_, d) => slotView(buf, (base + d) * capFloats * 4, capFloats, m.partialDtype));
  const a = m.rowStart * m.hidden, b = m.rowEnd * m.hidden;
  if (fault?.phase === 'reduce') reduceRange(out, slots, a, a + Math.floor((b - a) / 2), m.partialDtype); // half done, then the fault
  takeFault('reduce');
  reduceRange(out, slots, a, b, m.partialDtype);
  return { id: m.id, ok: true, reduceMs: performance.now() - t0 };
}

/** Phase 3: commit the step. */
function commit(m: CommitMsg): Reply {
  if (!pending || pending.id !== m.id) throw new Error(`commit of call ${m.id} but the prepared call is ${pending?.id ?? 'none'}`);
  cache!.step(pending.kv);
  pending = null;
  return { id: m.id, ok: true };
}

/** Testing: the injected fault of `phase`, once. */
function takeFault(phase: 'call' | 'reduce'): void {
  if (fault?.phase !== phase) return;
  const f = fault.mode;
  fault = null;
  if (f === 'exit') process.exit(7);
  throw new Error(phase === 'call' ? 'injected fault (after this device wrote its K/V slots)' : 'injected fault (halfway through its reduce rows)');
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
        case 'reduce': reply(reduce(m)); break;
        case 'commit': reply(commit(m)); break;
        case 'inspect':
          reply({ id, ok: true, lengths: cache!.sequenceIds.map((s) => [s, cache!.cacheLength(s)]), numFreePages: cache!.numFreePages });
          break;
        case 'abort':
          if (pending?.id === m.id) { cache!.abandon(pending.kv); pending = null; }
          break;
        case 'fault': fault = { mode: m.mode, phase: m.phase ?? 'call' }; break;
        case 'dispose': layer?.dispose(); port.close(); break;
      }
    } catch (e) {
      reply({ id, ok: false, error: msgOf(e) });
    }
  });
});
