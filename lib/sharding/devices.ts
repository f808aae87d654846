/** Device placements: validation and parsing of `cpu,cpu,wasm` style lists. */
import { check, checkInt } from '../errors.js';
import type { DevicePlacement } from '../types.js';

/** Backends a shard worker can run. */
export const WORKER_BACKENDS = ['cpu', 'wasm', 'webgpu'] as const;

/** Throws unless `devices` is a non-empty array of `{backend, index}` with known backends and distinct placements. */
export function checkDevices(devices: readonly DevicePlacement[], where: string): void {
  check(Array.isArray(devices) && devices.length >= 1, where, () => `devices must be a non-empty array, got ${JSON.stringify(devices)}`);
  const seen = new Set<string>();
  devices.forEach((d, i) => {
    check(d && typeof d === 'object', where, () => `devices[${i}] must be {backend, index}, got ${JSON.stringify(d)}`);
    check((WORKER_BACKENDS as readonly string[]).includes(d.backend), where, () =>
      `devices[${i}].backend ('${d.backend}') must be one of ${WORKER_BACKENDS.join(', ')}`);
    checkInt(d.index, where, `devices[${i}].index`, 0);
    const key = deviceName(d);
    check(!seen.has(key), where, () => `devices[${i}] (${key}) appears twice`);
    seen.add(key);
  });
}

/** `cpu:1` */
export function deviceName(d: DevicePlacement): string { return `${d.backend}:${d.index}`; }

/**
 * Parses `cpu,cpu,wasm` (or `cpu:0,cpu:3`) into placements; a bare backend name takes the next
 * index of that backend.
 *
 * @example
 * parseDevices('cpu,cpu,wasm'); // [{backend:'cpu',index:0}, {backend:'cpu',index:1}, {backend:'wasm',index:0}]
 */
export function parseDevices(list: string | readonly string[]): DevicePlacement[] {
  const items = (typeof list === 'string' ? list.split(',') : list).map((s) => s.trim()).filter(Boolean);
  const next = new Map<string, number>();
  const out = items.map((item) => {
    const [backend, idx] = item.split(':');
    const index = idx === undefined ? (next.get(backend) ?? 0) : Number(idx);
    next.set(backend, Math.max(next.get(backend) ?? 0, index + 1));
    return { backend, index };
  });
  checkDevices(out, 'parseDevices');
  return out;
}
