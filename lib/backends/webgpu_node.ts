/**
 * Registers tfjs-backend-webgpu in Node through Dawn (the npm package `webgpu`, whose prebuilt
 * `dawn.node` addon finds a Vulkan / Metal / D3D12 adapter). Browsers need none of this: the
 * backend registers itself there from `navigator.gpu`.
 *
 * The addon is loaded with `require` (the `webgpu` package is ESM with a CommonJS addon inside,
 * and jest runs CommonJS), from `$DAWN_NODE` when set (the device-machine recipe), else from
 * `node_modules/webgpu/dist/<platform>-<arch>/dawn.node`.
 */
/// <reference types="@webgpu/types" />
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { packageRoot } from '../util/package_root.js';
import { envSwitch } from '../../core/env.js';
import { type AdapterInfoLike, noteAdapterInfo } from '../../kernels/webgpu/tensor_cores.js';

/** What `initWebGpuNode` found; `reason` says why it returned false. */
export interface WebGpuNodeStatus {
  ok: boolean;
  reason: string;
  adapter?: { vendor: string; architecture: string; device: string; description: string };
  features: string[];
}

let status: WebGpuNodeStatus | null = null;
/** Dawn toggles on an NVIDIA adapter: f16 in shaders on Vulkan and the experimental subgroup-matrix feature. */
export const NVIDIA_DAWN_FEATURES = 'allow_unsafe_apis,vulkan_enable_f16_on_nvidia';
let gpuDevice: GPUDevice | null = null;

/** Loads `dawn.node` (`{create, globals}`) or throws with the paths tried. */
export function loadDawn(): { create(flags: string[]): GPU; globals: Record<string, unknown> } {
  const req = createRequire(path.join(packageRoot, 'package.json'));
  const tried: string[] = [];
  const candidates: string[] = [];
  const dawnNode = envSwitch('DAWN_NODE', 'DAWN_NODE'); // TFJS_ATTENTION_DAWN_NODE, or Dawn's own DAWN_NODE
  if (dawnNode) candidates.push(dawnNode);
  try {
    const dir = path.dirname(req.resolve('webgpu/package.json'));
    const arch = process.platform === 'darwin' ? 'universal' : process.arch;
    candidates.push(path.join(dir, 'dist', `${process.platform}-${arch}`, 'dawn.node'));
  } catch (e) {
    tried.push(`webgpu package: ${(e as Error).message.split('\n')[0]}`);
  }
  for (const c of candidates) {
    try {
      return req(c);
    } catch (e) {
      tried.push(`${c}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(`cannot load dawn.node (${tried.join('; ')})`);
}

/**
 * Creates a Dawn device and registers it as tfjs backend `webgpu` (priority 1, so it is not
 * picked unless asked for with `tf.setBackend('webgpu')`). Requests every feature and the
 * adapter's own limits, so kernels may use `subgroups` and 2 GiB storage buffers where offered.
 * Returns false, with the reason in `webGpuNodeStatus().reason`, when no adapter is found.
 * Safe to call more than once.
 *
 * @example
 * if (await initWebGpuNode()) { registerAllKernels(); await tf.setBackend('webgpu'); }
 * else console.log(webGpuNodeStatus().reason);
 */
export async function initWebGpuNode(flags: string[] = []): Promise<boolean> {
  if (status?.ok) return true;
  try {
    const dawn = loadDawn();
    Object.assign(globalThis, dawn.globals);
    // TFJS_ATTENTION_DAWN_TOGGLES: more Dawn toggles to enable, comma-separated (benches, e.g. disable_robustness).
    const extra = envSwitch('DAWN_TOGGLES');
    const own = flags.some((f) => f.startsWith('enable-dawn-features='));
    const withToggles = (base: string) => (own ? flags : [...flags, `enable-dawn-features=${[base, extra].filter(Boolean).join(',')}`]);
    let gpu = dawn.create(extra ? withToggles('') : flags);
    let adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    const vendor = (adapter as unknown as { info?: GPUAdapterInfo } | null)?.info?.vendor ?? '';
    if (adapter && /nvidia/i.test(vendor) && !own) {
      // NVIDIA: Dawn keeps shader-f16 off on Vulkan and hides chromium-experimental-subgroup-matrix
      // (tensor cores) behind allow_unsafe_apis; start it again with both on (NVIDIA_DAWN_FEATURES).
      gpu = dawn.create(withToggles(NVIDIA_DAWN_FEATURES));
      adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    }
    if (!adapter) {
      status = { ok: false, reason: 'no WebGPU adapter (is a Vulkan driver installed? run scripts/setup-vulkan.sh)', features: [] };
      return false;
    }
    const features = [...adapter.features] as GPUFeatureName[];
    const limits: Record<string, number> = {};
    const names = ['maxComputeWorkgroupStorageSize', 'maxComputeWorkgroupsPerDimension', 'maxStorageBufferBindingSize',
      'maxBufferSize', 'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupSizeY', 'maxComputeInvocationsPerWorkgroup',
      'maxStorageBuffersPerShaderStage'] as const;
    for (const n of names) limits[n] = (adapter.limits as unknown as Record<string, number>)[n];
    const device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits: limits });
    gpuDevice = device;
    const { WebGPUBackend } = await import('@tensorflow/tfjs-backend-webgpu');
    // WebGPUBackend's constructor checks navigator.gpu (set after the import, so the package
    // does not register its own factory, which would ask for a device without subgroups).
    const g = globalThis as unknown as { navigator?: Record<string, unknown> };
    if (g.navigator === undefined) g.navigator = {};
    Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true, writable: true });
    const info = (adapter as unknown as { info: GPUAdapterInfo }).info;
    const registry = (tf.engine() as unknown as { registryFactory: Record<string, unknown> }).registryFactory;
    if ('webgpu' in registry) tf.removeBackend('webgpu');
    tf.registerBackend('webgpu', () => new WebGPUBackend(device, info), 1);
    noteAdapterInfo(device, info as unknown as AdapterInfoLike); // subgroup-matrix configs (tensor cores)
    status = {
      ok: true, reason: '', features,
      adapter: { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description },
    };
    return true;
  } catch (e) {
    status = { ok: false, reason: (e as Error).message, features: [] };
    return false;
  }
}

/** What the last `initWebGpuNode` found. */
export function webGpuNodeStatus(): WebGpuNodeStatus {
  return status ?? { ok: false, reason: 'initWebGpuNode() not called', features: [] };
}

/**
 * Drops the backend and the device so Node can exit (Dawn keeps the process alive while its
 * GPU object is referenced).
 */
export function disposeWebGpuNode(): void {
  if (tf.findBackend('webgpu')) tf.removeBackend('webgpu');
  gpuDevice?.destroy();
  gpuDevice = null;
  const g = globalThis as unknown as { navigator?: Record<string, unknown> };
  if (g.navigator && 'gpu' in g.navigator) delete g.navigator.gpu;
  status = null;
}
