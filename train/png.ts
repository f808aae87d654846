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

export interface Series { values: number[]; color: [number, number, number]; /** y range; default: all series' common [min, max] */ range?: [number, number] }

/** 3x5 bitmap glyphs (rows top to bottom, 3 bits each) for axis labels. */
const GLYPHS: Record<string, number[]> = {
  '0': [7, 5, 5, 5, 7], '1': [2, 6, 2, 2, 7], '2': [7, 1, 7, 4, 7], '3': [7, 1, 7, 1, 7], '4': [5, 5, 7, 1, 1],
  '5': [7, 4, 7, 1, 7], '6': [7, 4, 7, 5, 7], '7': [7, 1, 1, 2, 2], '8': [7, 5, 7, 5, 7], '9': [7, 5, 7, 1, 7],
  '.': [0, 0, 0, 0, 2], '-': [0, 0, 7, 0, 0], '%': [5, 1, 2, 4, 5], ' ': [0, 0, 0, 0, 0], ':': [0, 2, 0, 2, 0],
  a: [0, 6, 3, 5, 7], c: [0, 7, 4, 4, 7], e: [7, 5, 7, 4, 7], k: [4, 5, 6, 5, 5], l: [4, 4, 4, 4, 7], n: [0, 6, 5, 5, 5],
  o: [0, 7, 5, 5, 7], p: [7, 5, 7, 4, 4], r: [0, 7, 4, 4, 4], s: [7, 4, 7, 1, 7], t: [4, 7, 4, 4, 3], x: [0, 5, 2, 2, 5],
};

/**
 * A line chart of one or more series over the same x range (each on its `range`, else the common
 * [min, max]), a light grid every tenth of each axis, and short labels in a 3x5 pixel font.
 */
export function lineChartPng(series: Series[], width = 640, height = 360, labels: { text: string; at: 'tl' | 'tr' | 'bl' | 'br'; color?: number[] }[] = []): Uint8Array {
  const px = new Uint8Array(width * height * 3).fill(255);
  const set = (x: number, y: number, c: readonly number[]) => {
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    const o = 3 * (y * width + x);
    px[o] = c[0]; px[o + 1] = c[1]; px[o + 2] = c[2];
  };
  const text = (str: string, x0: number, y0: number, c: readonly number[], k = 2) => {
    [...str].forEach((ch, n) => (GLYPHS[ch] ?? GLYPHS[' ']).forEach((bits, row) => {
      for (let col = 0; col < 3; col++) {
        if (!(bits & (4 >> col))) continue;
        for (let dy = 0; dy < k; dy++) for (let dx = 0; dx < k; dx++) set(x0 + n * 4 * k + col * k + dx, y0 + row * k + dy, c);
      }
    }));
  };
  const m = 30;
  for (const l of labels) {
    const w = l.text.length * 8;
    const x = l.at === 'tl' || l.at === 'bl' ? m : width - m - w;
    const y = l.at === 'tl' || l.at === 'tr' ? 10 : height - m + 8;
    text(l.text, x, y, l.color ?? [60, 60, 60]);
  }
  for (let i = 0; i <= 10; i++) {
    const gx = Math.round(m + (i * (width - 2 * m)) / 10), gy = Math.round(m + (i * (height - 2 * m)) / 10);
    for (let y = m; y <= height - m; y++) set(gx, y, i === 0 ? [0, 0, 0] : [225, 225, 225]);
    for (let x = m; x <= width - m; x++) set(x, gy, i === 10 ? [0, 0, 0] : [225, 225, 225]);
  }
  const all = series.flatMap((s) => s.values).filter(Number.isFinite);
  for (const s of series) {
    const [lo, hi] = s.range ?? [Math.min(...all), Math.max(...all)];
    const span = hi - lo || 1;
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
