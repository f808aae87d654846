/**
 * BF16 -> float32 widening of file chunks with WebAssembly SIMD (8 values per instruction pair;
 * a plain JS loop costs ~8 ns a value on a busy 2-core machine, this ~0.3 ns). The chunk is read
 * straight into the module's memory, widened there, and copied out with one `Float32Array.set`.
 * Where WebAssembly SIMD is missing, a JS loop does the same.
 *
 * The module (hand-assembled, 125 bytes), in WAT:
 *   (memory (export "mem") 1)
 *   (func (export "widen") (param $src i32) (param $dst i32) (param $n i32) (local $v v128)
 *     (block (loop
 *       (br_if 1 (i32.le_s (local.get $n) (i32.const 0)))
 *       (v128.store offset=0 (local.get $dst)
 *         (i32x4.shl (i32x4.extend_low_i16x8_u (local.tee $v (v128.load (local.get $src)))) (i32.const 16)))
 *       (v128.store offset=16 (local.get $dst) (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $v)) (i32.const 16)))
 *       (local.set $src (i32.add (local.get $src) (i32.const 16)))
 *       (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
 *       (local.set $n (i32.sub (local.get $n) (i32.const 8)))
 *       (br 0))))
 */
const WASM = Uint8Array.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x07, 0x01, 0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x00, // type: (i32, i32, i32) -> ()
  0x03, 0x02, 0x01, 0x00, // func 0 has type 0
  0x05, 0x03, 0x01, 0x00, 0x01, // memory: 1 page, no max
  0x07, 0x0f, 0x02, 0x05, 0x77, 0x69, 0x64, 0x65, 0x6e, 0x00, 0x00, 0x03, 0x6d, 0x65, 0x6d, 0x02, 0x00, // exports
  0x0a, 0x50, 0x01, 0x4e, 0x01, 0x01, 0x7b, // code: one body, one v128 local
  0x02, 0x40, 0x03, 0x40,
  0x20, 0x02, 0x41, 0x00, 0x4c, 0x0d, 0x01, // br_if 1 (n <= 0)
  0x20, 0x01, 0x20, 0x00, 0xfd, 0x00, 0x00, 0x00, 0x22, 0x03, // dst, v = load(src)
  0xfd, 0xa9, 0x01, 0x41, 0x10, 0xfd, 0xab, 0x01, 0xfd, 0x0b, 0x00, 0x00, // store(dst, extend_low_u(v) << 16)
  0x20, 0x01, 0x20, 0x03, 0xfd, 0xaa, 0x01, 0x41, 0x10, 0xfd, 0xab, 0x01, 0xfd, 0x0b, 0x00, 0x10, // store(dst+16, extend_high_u(v) << 16)
  0x20, 0x00, 0x41, 0x10, 0x6a, 0x21, 0x00, // src += 16
  0x20, 0x01, 0x41, 0x20, 0x6a, 0x21, 0x01, // dst += 32
  0x20, 0x02, 0x41, 0x08, 0x6b, 0x21, 0x02, // n -= 8
  0x0c, 0x00, 0x0b, 0x0b, 0x0b,
]);

/** Widens chunks of BF16 values into float32 arrays. */
export interface Bf16Widener {
  /** Most values one `widen` call takes. */
  readonly chunkValues: number;
  /** Where to put the next chunk's `2 * n` BF16 bytes (valid until the next call). */
  input(n: number): Uint8Array;
  /** Widens the `n` values of `input(n)` into `out[at .. at + n)`. */
  widen(n: number, out: Float32Array, at: number): void;
}

class WasmWidener implements Bf16Widener {
  private readonly mem: WebAssembly.Memory;
  private readonly fn: (src: number, dst: number, n: number) => void;
  constructor(readonly chunkValues: number) {
    const inst = new WebAssembly.Instance(new WebAssembly.Module(WASM));
    this.mem = inst.exports.mem as WebAssembly.Memory;
    this.fn = inst.exports.widen as (src: number, dst: number, n: number) => void;
    const need = 6 * chunkValues + 64; // input (2n, padded to 16) + output (4n, padded to 32)
    this.mem.grow(Math.ceil(need / 65536));
  }
  private get outOffset(): number { return 2 * this.chunkValues + 32; }
  input(n: number): Uint8Array { return new Uint8Array(this.mem.buffer, 0, 2 * n); }
  widen(n: number, out: Float32Array, at: number): void {
    this.fn(0, this.outOffset, n);
    out.set(new Float32Array(this.mem.buffer, this.outOffset, n), at);
  }
}

class JsWidener implements Bf16Widener {
  private readonly buf: ArrayBuffer;
  constructor(readonly chunkValues: number) { this.buf = new ArrayBuffer(2 * chunkValues); }
  input(n: number): Uint8Array { return new Uint8Array(this.buf, 0, 2 * n); }
  widen(n: number, out: Float32Array, at: number): void {
    const half = new Uint16Array(this.buf, 0, n);
    const bits = new Uint32Array(out.buffer, out.byteOffset + 4 * at, n);
    for (let i = 0; i < n; i++) bits[i] = half[i] << 16;
  }
}

let shared: Bf16Widener | undefined;

/** The process's widener (WebAssembly SIMD where available), chunks of 512 Ki values. */
export function bf16Widener(): Bf16Widener {
  if (shared) return shared;
  const chunk = 1 << 19;
  try {
    shared = typeof WebAssembly === 'object' && WebAssembly.validate(WASM) ? new WasmWidener(chunk) : new JsWidener(chunk);
  } catch {
    shared = new JsWidener(chunk);
  }
  return shared;
}

/** The JS fallback, for specs that compare both. */
export function jsBf16Widener(chunkValues = 1 << 19): Bf16Widener {
  return new JsWidener(chunkValues);
}
