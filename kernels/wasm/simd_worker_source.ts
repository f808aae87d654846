/**
 * The source of a WebAssembly SIMD kernel thread (kernels/wasm/simd_threads.ts starts it: a browser Worker from
 * a Blob URL, or in Node a worker_threads Worker with `eval`). A plain script with no imports, so the same text
 * runs in both. It instantiates the shared-memory build on the memory it is sent, then claims chunks of the
 * current job from the control block until none is left, and sleeps on the wake word (Atomics.wait, 1 s
 * bounds; a worker may block, a page's main thread may not) until the next job or the quit word.
 *
 * Control block (Int32Array over a SharedArrayBuffer; CTL in simd_threads.ts names the words):
 *   i64 word 0   the claim word: job tag << 32 | chunk count << 16 | next chunk; a thread owns chunk c of the
 *                job when its compareExchange moves the word from c to c + 1 (c < count), and only then reads
 *                the job's arguments (they stay fixed until every chunk of that job is done)
 *   2 WAKE (bumped per job), 3 DONE (chunks finished), 4 QUIT, 5 ERROR (a chunk threw), 6 OP (1 sgemm_cols,
 *   2 swiglu_gate_up_cols, 3 flash_attention_items: a float argument goes as its bits), 7 chunk columns (items),
 *   8.. the job's arguments (heap byte offsets and sizes), 32 + thread: that thread's scratch offset.
 */
export const WASM_THREAD_WORKER_SOURCE = `
'use strict';
const nodePort = typeof require === 'function' ? require('node:worker_threads').parentPort : null;
const post = (m) => (nodePort ? nodePort.postMessage(m) : self.postMessage(m));
const onFirstMessage = (fn) => {
  if (nodePort) nodePort.once('message', fn); else self.onmessage = (ev) => { self.onmessage = null; fn(ev.data); };
};
onFirstMessage((init) => {
  let e;
  try {
    e = new WebAssembly.Instance(init.module, { env: { memory: init.memory } }).exports;
    e.__stack_pointer.value = init.stackTop;
  } catch (err) { post({ error: String(err && err.message || err) }); return; }
  const ctl = new Int32Array(init.ctl), claim = new BigInt64Array(init.ctl), bits = new Int32Array(1), bitsF = new Float32Array(bits.buffer);
  post({ ready: true });
  const runChunk = (c) => {
    const op = Atomics.load(ctl, 6), cols = Atomics.load(ctl, 7), a = (i) => Atomics.load(ctl, 8 + i);
    const scratch = Atomics.load(ctl, 32 + init.index), n0 = c * cols;
    if (op === 1) e.sgemm_cols(a(0), a(1), a(2), a(3), a(4), a(5), a(6), a(7), a(8), n0, Math.min(a(6), n0 + cols), scratch);
    else if (op === 2) e.swiglu_gate_up_cols(a(0), a(1), a(2), a(3), a(4), a(5), a(6), a(7), a(8), a(9), n0, Math.min(a(9), n0 + cols), scratch);
    else if (op === 3) {
      bits[0] = a(9);
      e.flash_attention_items(a(0), a(1), a(2), a(3), a(4), a(5), a(6), a(7), a(8), bitsF[0], scratch, n0, Math.min(a(10), n0 + cols));
    } else throw new Error('unknown op ' + op);
  };
  for (;;) {
    const seen = Atomics.load(ctl, 2);
    if (Atomics.load(ctl, 4) !== 0) return;
    for (;;) {
      const v = Atomics.load(claim, 0), count = Number((v >> 16n) & 0xffffn), next = Number(v & 0xffffn);
      if (next >= count) break;
      if (Atomics.compareExchange(claim, 0, v, v + 1n) !== v) continue;
      try { runChunk(next); } catch (err) { Atomics.store(ctl, 5, 1); }
      Atomics.add(ctl, 3, 1);
      Atomics.notify(ctl, 3);
    }
    Atomics.wait(ctl, 2, seen, 1000);
  }
});
`;
