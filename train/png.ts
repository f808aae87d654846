/**
 * A minimal PNG writer (8-bit RGB, no interlace) and a line chart on top of it: no dependency
 * beyond node:zlib, no network.
 */
import { deflateSync } from 'node:zlib';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** Encodes RGB pixels `[height, width, 3]` (row-major) as PNG bytes. */
export function encodePng(width: number, height: number, rgb: Uint8Array): Uint8Array {
  const raw = new Uint8Array(height * (1 + 3 * width));
  for (let y = 0; y < height; y++) raw.set(rgb.subarray(y * 3 * width, (y + 1) * 3 * width), y * (1 + 3 * width) + 1);
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width); v.setUint32(4, height);
  ihdr[8] = 8; ihdr[9] = 2; // 8 bits, RGB
  const parts = [new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0))];
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

export interface Series { values: number[]; color: [number, number, number] }

/**
 * A line chart of one or more series over the same x range, each scaled to its own [min, max]
 * when `ownScale`, else to the common one; light grid every tenth of each axis.
 */
export function lineChartPng(series: Series[], width = 640, height = 360, ownScale = false): Uint8Array {
  const px = new Uint8Array(width * height * 3).fill(255);
  const set = (x: number, y: number, c: readonly number[]) => {
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    const o = 3 * (y * width + x);
    px[o] = c[0]; px[o + 1] = c[1]; px[o + 2] = c[2];
  };
  const m = 30;
  for (let i = 0; i <= 10; i++) {
    const gx = Math.round(m + (i * (width - 2 * m)) / 10), gy = Math.round(m + (i * (height - 2 * m)) / 10);
    for (let y = m; y <= height - m; y++) set(gx, y, i === 0 ? [0, 0, 0] : [225, 225, 225]);
    for (let x = m; x <= width - m; x++) set(x, gy, i === 10 ? [0, 0, 0] : [225, 225, 225]);
  }
  const all = series.flatMap((s) => s.values).filter(Number.isFinite);
  for (const s of series) {
    const vals = ownScale ? s.values.filter(Number.isFinite) : all;
    const lo = Math.min(...vals), hi = Math.max(...vals), span = hi - lo || 1;
    const n = s.values.length;
    let prev: [number, number] | null = null;
    s.values.forEach((val, i) => {
      if (!Number.isFinite(val)) return;
      const x = Math.round(m + (i / Math.max(1, n - 1)) * (width - 2 * m));
      const y = Math.round(height - m - ((val - lo) / span) * (height - 2 * m));
      if (prev) {
        const steps = Math.max(Math.abs(x - prev[0]), Math.abs(y - prev[1]), 1);
        for (let k = 0; k <= steps; k++) {
          const xx = Math.round(prev[0] + ((x - prev[0]) * k) / steps), yy = Math.round(prev[1] + ((y - prev[1]) * k) / steps);
          set(xx, yy, s.color); set(xx, yy + 1, s.color);
        }
      }
      prev = [x, y];
    });
  }
  return encodePng(width, height, px);
}
