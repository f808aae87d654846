/// <reference types="@webgpu/types" />
/**
 * Whether a device can run the split-f16 tensor-core matmul (matmul_split_f16_wgsl.ts): the
 * `chromium-experimental-subgroup-matrix`, `shader-f16` and `subgroups` features, an f16 x f16 ->
 * f32 16x16x16 subgroup-matrix config, and subgroups of exactly 32 lanes (the kernel numbers its
 * subgroups by `subgroup_id` in a 32-lane layout). Dawn on NVIDIA Vulkan offers all of it when
 * started with NVIDIA_DAWN_FEATURES (lib/backends/webgpu_node.ts); lavapipe does not.
 *
 * The configs are listed on the adapter's info (`adapter.info.subgroupMatrixConfigs`), not on
 * `device.adapterInfo` (empty there on the H200 with Dawn 0.6.2, run of 2026-12-03): whoever makes the
 * device hands the adapter's info over with `noteAdapterInfo` (initWebGpuNode does).
 *
 * @example
 * noteAdapterInfo(device, adapter.info);
 * if (splitF16Supported(device)) console.log('tensor cores reachable');
 */

interface SubgroupMatrixConfigLike { componentType: string; resultComponentType: string; M: number; N: number; K: number }
export interface AdapterInfoLike { subgroupMinSize?: number; subgroupMaxSize?: number; subgroupMatrixConfigs?: Iterable<SubgroupMatrixConfigLike> }

const verdicts = new WeakMap<GPUDevice, boolean>();
const adapterInfos = new WeakMap<GPUDevice, AdapterInfoLike>();

/** Records the info of the adapter `device` came from (its subgroup-matrix configs). */
export function noteAdapterInfo(device: GPUDevice, info: AdapterInfoLike): void {
  adapterInfos.set(device, info);
  verdicts.delete(device);
}

const configsOf = (info: AdapterInfoLike | undefined): SubgroupMatrixConfigLike[] => [...(info?.subgroupMatrixConfigs ?? [])];

/** The f16 -> f32 subgroup-matrix configs of a device, as `f16->f32 16x16x16` strings (for logs). */
export function subgroupMatrixConfigs(device: GPUDevice): string[] {
  const own = (device as unknown as { adapterInfo?: AdapterInfoLike }).adapterInfo;
  const list = configsOf(own).length ? configsOf(own) : configsOf(adapterInfos.get(device));
  return list.map((c) => `${c.componentType}->${c.resultComponentType} ${c.M}x${c.N}x${c.K}`);
}

export function splitF16Supported(device: GPUDevice): boolean {
  let ok = verdicts.get(device);
  if (ok !== undefined) return ok;
  const info = adapterInfos.get(device) ?? (device as unknown as { adapterInfo?: AdapterInfoLike }).adapterInfo;
  const features = ['chromium-experimental-subgroup-matrix', 'shader-f16', 'subgroups'];
  ok = features.every((f) => device.features.has(f))
    && info?.subgroupMinSize === 32 && info?.subgroupMaxSize === 32
    && subgroupMatrixConfigs(device).includes('f16->f32 16x16x16');
  verdicts.set(device, ok);
  return ok;
}
