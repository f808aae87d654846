/// <reference types="@webgpu/types" />
/**
 * Raw device work on tfjs-backend-webgpu's device, in its command stream. The kernels here do
 * not go through `runWebGPUProgram`: they bind the paged KV buffers read-write (tfjs programs
 * bind inputs read-only) and use their own bind-group layouts. Order with tfjs's own programs
 * is kept by recording into the backend's command encoder and submitting right after.
 */
import type { TensorInfo } from '@tensorflow/tfjs';

/** The parts of WebGPUBackend 4.22 used here (internal fields, stable across 4.x). */
export interface WebGpuBackendLike {
  device: GPUDevice;
  queue: GPUQueue;
  commandEncoder: GPUCommandEncoder | null;
  tensorMap: { get(dataId: object): { resource?: unknown; values?: unknown } };
  bufferManager: {
    acquireBuffer(size: number, usage: number, mappedAtCreation?: boolean, reuse?: boolean): GPUBuffer;
    releaseBuffer(buffer: GPUBuffer, reuse?: boolean): void;
  };
  uniformPendingDisposal: GPUBuffer[];
  makeTensorInfo(shape: number[], dtype: 'float32'): TensorInfo;
  uploadToGPU(dataId: object): void;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

/** The GPUBuffer behind a tensor, uploading it first if it lives on the CPU. */
export function tensorBuffer(backend: WebGpuBackendLike, t: TensorInfo): GPUBuffer {
  backend.uploadToGPU(t.dataId);
  const r = backend.tensorMap.get(t.dataId).resource;
  if (!(r instanceof GPUBuffer)) throw new Error('[webgpu] tensor is not backed by a GPUBuffer');
  return r;
}

/** An empty float32 output tensor (no buffer; tfjs reads it as zero elements). */
export function emptyOutput(backend: WebGpuBackendLike, shape: number[]): TensorInfo {
  const info = backend.makeTensorInfo(shape, 'float32');
  backend.tensorMap.get(info.dataId).values = new Float32Array(0);
  return info;
}

/** A new float32 output tensor and its (uninitialised) buffer. */
export function newOutput(backend: WebGpuBackendLike, shape: number[]): { info: TensorInfo; buffer: GPUBuffer } {
  const info = backend.makeTensorInfo(shape, 'float32');
  return { info, buffer: tensorBuffer(backend, info) };
}

/**
 * A scratch storage buffer of at least `bytes`, from the backend's pool (sizes rounded up to a
 * power of two so the pool stays small), returned to the pool at the next submit.
 */
export function scratchBuffer(backend: WebGpuBackendLike, bytes: number, data?: ArrayBufferView): GPUBuffer {
  const size = Math.max(16, 2 ** Math.ceil(Math.log2(Math.max(bytes, 1))));
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
  const buf = backend.bufferManager.acquireBuffer(size, usage);
  if (data) backend.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
  backend.uniformPendingDisposal.push(buf);
  return buf;
}

const pipelines = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

/** Compiles (once per device and source) a compute pipeline with entry point `main`. */
export function pipelineFor(device: GPUDevice, code: string, label: string): GPUComputePipeline {
  let m = pipelines.get(device);
  if (!m) pipelines.set(device, (m = new Map()));
  let p = m.get(code);
  if (!p) {
    const module = device.createShaderModule({ code, label });
    p = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label });
    m.set(code, p);
  }
  return p;
}

const keyedPipelines = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

/**
 * pipelineFor by a short key: the WGSL is generated (by `code()`) and compiled only the first
 * time a key is seen, so a step's ~100 dispatches do not regenerate and hash kilobytes of source.
 */
export function pipelineForKey(device: GPUDevice, key: string, code: () => string): GPUComputePipeline {
  let m = keyedPipelines.get(device);
  if (!m) keyedPipelines.set(device, (m = new Map()));
  let p = m.get(key);
  if (!p) m.set(key, (p = pipelineFor(device, code(), key)));
  return p;
}

/** One dispatch: a pipeline, its buffers in binding order, and the workgroup grid. */
export interface Dispatch {
  pipeline: GPUComputePipeline;
  buffers: GPUBuffer[];
  grid: [number, number, number];
}

/** `label`: the pass's pipelines' labels joined by '+' (a profile's row name). */
type TimestampHook = (device: GPUDevice, label: string) => GPUComputePassTimestampWrites | undefined;
let passTimestamps: TimestampHook | null = null;
/** Benches: give each kernel's compute pass timestamp writes (null to stop). */
export function setPassTimestamps(hook: TimestampHook | null): void {
  passTimestamps = hook;
}

/**
 * Encodes the dispatches in one compute pass of the backend's encoder (empty grids skipped, grids
 * past the device limit refused); `bindGroup` gives each dispatch's group. Returns whether the
 * pass wrote timestamps (a bench is timing it: the caller then submits at once).
 */
function encodePass(backend: WebGpuBackendLike, dispatches: Dispatch[], bindGroup: (d: Dispatch) => GPUBindGroup): boolean {
  const max = backend.device.limits.maxComputeWorkgroupsPerDimension;
  backend.ensureCommandEncoderReady();
  backend.endComputePassEncoder();
  const tw = passTimestamps?.(backend.device, dispatches.map((d) => d.pipeline.label).join('+'));
  const pass = backend.commandEncoder!.beginComputePass(tw ? { timestampWrites: tw } : {});
  for (const d of dispatches) {
    if (d.grid.some((n) => n === 0)) continue;
    if (d.grid.some((n) => n > max)) throw new Error(`[webgpu] grid [${d.grid}] exceeds maxComputeWorkgroupsPerDimension (${max})`);
    pass.setPipeline(d.pipeline);
    pass.setBindGroup(0, bindGroup(d));
    pass.dispatchWorkgroups(d.grid[0], d.grid[1], d.grid[2]);
  }
  pass.end();
  return tw !== undefined && tw !== null;
}

/** A new bind group of a dispatch's buffers in binding order. */
function newBindGroup(device: GPUDevice, d: Dispatch): GPUBindGroup {
  return device.createBindGroup({
    layout: d.pipeline.getBindGroupLayout(0),
    // A sparse array leaves holes (e.g. int8 cache scales at bindings 10 / 11): map skips them.
    entries: d.buffers.map((buffer, binding) => ({ binding, resource: { buffer } })).filter((e) => e !== undefined),
  });
}

/** Records the dispatches in one compute pass of the backend's encoder, then submits. */
export function runDispatches(backend: WebGpuBackendLike, dispatches: Dispatch[]): void {
  encodePass(backend, dispatches, (d) => newBindGroup(backend.device, d));
  backend.submitQueue();
}

/** Whether WGSL may use `subgroupShuffleXor` etc. on this device with at least `lanes` lanes. */
export function subgroupLanes(device: GPUDevice): number {
  if (!device.features.has('subgroups' as GPUFeatureName)) return 0;
  const info = (device as unknown as { adapterInfo?: { subgroupMinSize?: number } }).adapterInfo;
  return info?.subgroupMinSize ?? 0;
}

/** The subgroup size when the device has subgroups of one fixed size, else 0. */
export function fixedSubgroupSize(device: GPUDevice): number {
  if (!device.features.has('subgroups' as GPUFeatureName)) return 0;
  const info = (device as unknown as { adapterInfo?: { subgroupMinSize?: number; subgroupMaxSize?: number } }).adapterInfo;
  const lo = info?.subgroupMinSize ?? 0;
  return lo > 0 && lo === info?.subgroupMaxSize ? lo : 0;
}

/**
 * Like runDispatches, but leaves the submit to tfjs's batching (WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE
 * dispatches per submit, and before any readback): a decode step's ~100 small dispatches then
 * cost a handful of queue submits instead of one each. Scratch buffers stay reserved until that
 * submit (tfjs releases `uniformPendingDisposal` there), and so do the `tensors` named (inputs and
 * outputs: tfjs defers their disposal to the submit), so no buffer is reused while still pending.
 */
export function recordDispatches(backend: WebGpuBackendLike, dispatches: Dispatch[], batchSize: number, tensors: TensorInfo[]): void {
  // Tensors the pending commands use: tfjs defers their disposal (and buffer reuse) to the submit.
  const owned = (backend as unknown as { commandQueueOwnedIds: WeakSet<object> }).commandQueueOwnedIds;
  for (const t of tensors) owned.add(t.dataId);
  const timed = encodePass(backend, dispatches, (d) => cachedBindGroup(backend.device, d));
  const be = backend as unknown as { dispatchCountInPass: number };
  be.dispatchCountInPass = (be.dispatchCountInPass ?? 0) + dispatches.length;
  if (timed || be.dispatchCountInPass >= batchSize) backend.submitQueue();
}

/** A small read-only storage buffer of u32 words (dims, eps bits), kept per content (constWords). */
export function dimsBuffer(backend: WebGpuBackendLike, words: number[]): GPUBuffer {
  return constWords(backend.device, words);
}

const bufferIds = new WeakMap<GPUBuffer | GPUComputePipeline, number>();
let nextBufferId = 1;
const idOf = (o: GPUBuffer | GPUComputePipeline): number => {
  let id = bufferIds.get(o);
  if (id === undefined) bufferIds.set(o, (id = nextBufferId++));
  return id;
};
const bindGroups = new Map<string, GPUBindGroup>();
const BIND_GROUP_CACHE = 8192;

/**
 * The bind group of a dispatch, reused while the same pipeline meets the same buffers (a decode
 * step meets tfjs's pooled buffers again and again). Keys are object identities, so a destroyed
 * buffer's groups are never hit again; the cache is dropped whole when it grows past 8192 groups.
 */
function cachedBindGroup(device: GPUDevice, d: Dispatch): GPUBindGroup {
  const key = `${idOf(d.pipeline)}:${d.buffers.map(idOf).join(',')}`;
  let g = bindGroups.get(key);
  if (!g) {
    if (bindGroups.size >= BIND_GROUP_CACHE) bindGroups.clear();
    g = newBindGroup(device, d);
    bindGroups.set(key, g);
  }
  return g;
}

const constBuffers = new WeakMap<GPUDevice, Map<string, GPUBuffer>>();

/**
 * A read-only storage buffer holding `words` (u32), made once per device and content and kept:
 * the dims of the model kernels repeat every step, so no upload per dispatch.
 */
export function constWords(device: GPUDevice, words: number[]): GPUBuffer {
  let m = constBuffers.get(device);
  if (!m) constBuffers.set(device, (m = new Map()));
  const key = words.join(',');
  let b = m.get(key);
  if (!b) {
    if (m.size >= 4096) m.clear(); // not destroyed: pending commands may still use them
    b = device.createBuffer({ size: Math.max(16, 4 * words.length), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(b, 0, Uint32Array.from(words));
    m.set(key, b);
  }
  return b;
}
