/**
 * What the Node entry adds to the browser-clean main entry, installed through hooks on import:
 * the native CPU kernels (native_node.ts) and WebGPU through Dawn (webgpu_node.ts) for
 * `useBackend('webgpu')`. Imported by lib/node.ts (`tfjs-attention-rope/node`, and the main entry
 * under Node through package.json's "node" condition), the CLI, the main job, the benchmarks, the
 * shard workers and the jest setup.
 */
import './native_node.js';
import { setNodeWebGpuInit } from './select.js';
import { initWebGpuNode, webGpuNodeStatus } from './webgpu_node.js';

setNodeWebGpuInit(async () => {
  const ok = await initWebGpuNode();
  return { ok, reason: ok ? undefined : webGpuNodeStatus().reason };
});
