/** The WebAssembly SIMD BF16 widener gives the same bits as the JS loop, for every bit pattern and odd lengths. */
import { bf16Widener, jsBf16Widener } from '../../lib/loaders/widen_bf16';

describe('bf16Widener', () => {
  it('matches the JS loop bit for bit on all 65536 patterns and lengths that are not multiples of 8', () => {
    const wasm = bf16Widener();
    expect(wasm.constructor.name).toBe('WasmWidener'); // Node has WebAssembly SIMD
    for (const n of [1, 7, 9, 65536, 65536 + 5]) {
      const src = new Uint16Array(n).map((_, i) => (i * 40503) & 0xffff);
      const a = new Float32Array(n + 4).fill(-1);
      const b = new Float32Array(n + 4).fill(-1);
      for (const [w, out] of [[wasm, a], [jsBf16Widener(1000), b]] as const) {
        for (let f = 0; f < n; f += w.chunkValues) {
          const k = Math.min(w.chunkValues, n - f);
          w.input(k).set(new Uint8Array(src.buffer, 2 * f, 2 * k));
          w.widen(k, out, f);
        }
      }
      const bits = new Uint32Array(a.buffer);
      expect(Array.from(bits)).toEqual(Array.from(new Uint32Array(b.buffer)));
      for (let i = 0; i < n; i += 997) expect(bits[i]).toBe((src[i] << 16) >>> 0);
      expect(Array.from(a.subarray(n))).toEqual([-1, -1, -1, -1]); // nothing written past n
    }
  });
});
