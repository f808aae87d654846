/**
 * Browser stand-in for lib/backends/webgpu_node.ts (Dawn through the npm `webgpu` addon, Node only).
 * In a browser, @tensorflow/tfjs-backend-webgpu registers itself from `navigator.gpu`, and
 * useBackend('webgpu') takes that path; this is only reached where `navigator` is missing.
 */
export interface WebGpuNodeStatus { ok: boolean; reason: string; features: string[] }

const STATUS: WebGpuNodeStatus = { ok: false, reason: 'Dawn for Node is not part of the browser bundle', features: [] };

export async function initWebGpuNode(): Promise<boolean> { return false; }
export function webGpuNodeStatus(): WebGpuNodeStatus { return STATUS; }
export function disposeWebGpuNode(): void { /* nothing to release */ }
