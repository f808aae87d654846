/** The device-mirror protocol lives in core/device_mirror.ts; re-exported for lib/. */
export type { KVDeviceMirror } from '../../core/device_mirror.js';
