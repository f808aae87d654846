/**
 * What the Node entry adds to the browser-clean main entry, installed through hooks on import:
 * the native CPU kernels (native_node.ts) and WebGPU through Dawn (webgpu_node.ts) for
 * `useBackend('webgpu')`. Imported by lib/node.ts (`tfjs-attention-rope/node`, and the main entry
 * under Node through package.json's "node" condition), the CLI, the main job, the benchmarks, the
 * shard workers and the jest setup. It also drops tfjs's "install our node backend" banner for
 * code that picks the cpu backend with plain `tf.setBackend('cpu')` rather than `useBackend`.
 */
import './native_node.js';
import './wasm_threads_node.js';
import { silenceNodeBackendBanner } from './quiet_banner.js';
import { setNodeWebGpuInit } from './select.js';
import { initWebGpuNode, webGpuNodeStatus } from './webgpu_node.js';

silenceNodeBackendBanner();

setNodeWebGpuInit(async () => {
  const ok = await initWebGpuNode();
  return { ok, reason: ok ? undefined : webGpuNodeStatus().reason };
});
