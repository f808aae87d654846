/**
 * Benchmark harness pieces shared by bench modules: timing (median of repeated runs), result rows,
 * the table printer. See bench/run.ts for how modules are registered and run.
 */

/** One comparison: ratio = peer_ms / ours_ms (above 1: we are faster). */
export interface BenchRow {
  name: string;
  backend: string;
  ours_ms: number;
  peer: string;
  peer_ms: number;
  ratio: number;
}

export interface BenchOptions {
  /** Fewer iterations (smoke runs). */
  quick: boolean;
  log(msg: string): void;
}

export interface BenchModule {
  name: string;
  run(opts: BenchOptions): Promise<BenchRow[]>;
}

export interface TimeOptions { warmup?: number; minIters?: number; maxIters?: number; minMs?: number; maxMs?: number }

/** Median wall time (ms) of `fn` (sync or async) after `warmup` calls. */
export async function timeMs(fn: () => unknown, o: TimeOptions = {}): Promise<number> {
  const { warmup = 2, minIters = 5, maxIters = 50, minMs = 300, maxMs = 5000 } = o;
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  const t0 = performance.now();
  while (samples.length < maxIters) {
    const s = performance.now();
    await fn();
    samples.push(performance.now() - s);
    const spent = performance.now() - t0;
    if (samples.length >= minIters && (spent >= minMs || spent >= maxMs)) break;
    if (spent >= maxMs && samples.length >= 1) break;
  }
  samples.sort((a, b) => a - b);
  const n = samples.length;
  return n % 2 ? samples[(n - 1) / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2;
}

/**
 * Medians (ms) of several functions timed in alternation, `chunk` calls of each per round, the
 * first `skip` calls of each chunk discarded: load from other processes that comes and goes falls on every
 * side alike, while one side's leftovers (e.g. a peer's spinning thread pool) do not land on the
 * other's timed calls.
 */
export async function timeInterleaved(fns: (() => unknown)[], o: TimeOptions & { chunk?: number; skip?: number } = {}): Promise<number[]> {
  const { warmup = 3, minIters = 20, maxIters = 300, minMs = 3000, maxMs = 12000, chunk = 12, skip = 2 } = o;
  for (let i = 0; i < warmup; i++) for (const f of fns) await f();
  const samples: number[][] = fns.map(() => []);
  const t0 = performance.now();
  while (samples[0].length < maxIters) {
    for (let k = 0; k < fns.length; k++) {
      for (let c = 0; c < chunk; c++) {
        const s = performance.now();
        await fns[k]();
        if (c >= Math.min(skip, chunk - 1)) samples[k].push(performance.now() - s);
      }
    }
    const spent = performance.now() - t0;
    if ((samples[0].length >= minIters && spent >= minMs) || spent >= maxMs) break;
  }
  return samples.map((xs) => {
    xs.sort((a, b) => a - b);
    const n = xs.length;
    return n % 2 ? xs[(n - 1) / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
  });
}

/**
 * Medians (ms) of several functions timed in alternating blocks: `rounds` times, each function
 * runs a whole `timeMs` block (its own warm-up included); the result is the median of its block
 * medians. Load that drifts over the run falls on every side alike, and a peer's leftover work
 * (ONNX Runtime's intra-op threads spin for a while after each run) lands in the next side's
 * warm-up rather than in its timed calls.
 */
export async function timeBlocks(fns: (() => unknown)[], rounds = 3, o: TimeOptions = {}): Promise<number[]> {
  const meds: number[][] = fns.map(() => []);
  for (let r = 0; r < rounds; r++) for (let k = 0; k < fns.length; k++) meds[k].push(await timeMs(fns[k], o));
  return meds.map((xs) => xs.sort((a, b) => a - b)[xs.length >> 1]);
}

export function row(name: string, backend: string, oursMs: number, peer: string, peerMs: number): BenchRow {
  return { name, backend, ours_ms: oursMs, peer, peer_ms: peerMs, ratio: peerMs / oursMs };
}

export function formatTable(rows: BenchRow[]): string {
  const head = ['name', 'backend', 'ours ms', 'peer', 'peer ms', 'ratio'];
  const body = rows.map((r) => [r.name, r.backend, r.ours_ms.toFixed(2), r.peer, r.peer_ms.toFixed(2), `${r.ratio.toFixed(2)}x`]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (c: string[]): string => c.map((x, i) => (i >= 2 && i !== 3 ? x.padStart(w[i]) : x.padEnd(w[i]))).join('  ');
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...body.map(line)].join('\n');
}
