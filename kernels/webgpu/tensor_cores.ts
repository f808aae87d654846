/// <reference types="@webgpu/types" />
/**
 * Whether a device can run the split-f16 tensor-core matmul (matmul_split_f16_wgsl.ts): the
 * `chromium-experimental-subgroup-matrix`, `shader-f16` and `subgroups` features, an f16 x f16 ->
 * f32 16x16x16 subgroup-matrix config in the adapter info, and subgroups of exactly 32 lanes (the
 * kernel numbers its subgroups by `subgroup_id` in a 32-lane layout). Dawn on NVIDIA Vulkan offers
 * all of it when started with NVIDIA_DAWN_FEATURES (lib/backends/webgpu_node.ts); lavapipe does not.
 *
 * @example
 * if (splitF16Supported(device)) console.log('prefill matmuls on tensor cores');
 */

interface SubgroupMatrixConfigLike { componentType: string; resultComponentType: string; M: number; N: number; K: number }
interface AdapterInfoLike { subgroupMinSize?: number; subgroupMaxSize?: number; subgroupMatrixConfigs?: Iterable<SubgroupMatrixConfigLike> }

const verdicts = new WeakMap<GPUDevice, boolean>();

export function splitF16Supported(device: GPUDevice): boolean {
  let ok = verdicts.get(device);
  if (ok !== undefined) return ok;
  const info = (device as unknown as { adapterInfo?: AdapterInfoLike }).adapterInfo;
  const features = ['chromium-experimental-subgroup-matrix', 'shader-f16', 'subgroups'];
  const configs = [...(info?.subgroupMatrixConfigs ?? [])];
  ok = features.every((f) => device.features.has(f))
    && info?.subgroupMinSize === 32 && info?.subgroupMaxSize === 32
    && configs.some((c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && c.M === 16 && c.N === 16 && c.K === 16);
  verdicts.set(device, ok);
  return ok;
}
