/**
 * MPI_COMM_WORLD for this process: rank, size and the three collectives the project uses
 * (float32 sum allreduce in place, broadcast, barrier), each with a timeout so a dead rank fails
 * the call instead of hanging it. MPI is finalized when the process exits, and on SIGTERM /
 * SIGINT: every rank signalled (Slurm stopping a job) finalizes together and exits 143 / 130; a
 * 3 s watchdog ends a rank whose peers are gone (mpirun tearing the job down).
 */
import { check } from '../errors.js';
import { type MpiBinding, mpiBinding, mpiUnavailable } from './binding.js';

const W = 'MpiComm';

/** MPI thread levels (MPI_THREAD_*). */
export const THREAD_LEVELS = ['single', 'funneled', 'serialized', 'multiple'] as const;
export type ThreadLevel = typeof THREAD_LEVELS[number];

export interface MpiCommOptions {
  /**
   * Thread support to ask for (default 'serialized': collectives then run as blocking MPI calls on
   * a helper thread with a timeout; below it they are polled non-blocking collectives, slower).
   */
  threadLevel?: ThreadLevel;
  /** Default timeout of every collective in ms (default 120000, TFJS_ATTENTION_MPI_TIMEOUT_MS; 0 = none). */
  timeoutMs?: number;
  /** Floats per allreduce piece (default 4M = 16 MB): buffers larger than this go as several collectives. */
  chunkFloats?: number;
}

let world: MpiComm | null = null;

/**
 * The world communicator. Every rank runs the same program (SPMD) and calls the same collectives
 * in the same order.
 *
 * @example
 * // mpirun -np 2 --oversubscribe node app.js
 * const comm = MpiComm.world();
 * const g = new Float32Array([comm.rank + 1, 10]);
 * comm.allreduceSum(g); // [3, 20] on both ranks
 * if (comm.isRoot) console.log(`${comm.size} ranks`);
 */
export class MpiComm {
  readonly rank: number;
  readonly size: number;
  /** The thread level MPI granted. */
  readonly threadLevel: ThreadLevel;
  /** MPI_Get_library_version. */
  readonly version: string;
  timeoutMs: number;
  readonly chunkFloats: number;
  /** Floats sent through allreduceSum so far (what crossed the wire, per rank). */
  allreducedFloats = 0;
  /** Number of allreduceSum calls so far. */
  allreduceCalls = 0;

  private constructor(private readonly mpi: MpiBinding, opts: MpiCommOptions) {
    const level = opts.threadLevel ?? 'serialized';
    check(THREAD_LEVELS.includes(level), W, () => `threadLevel must be one of ${THREAD_LEVELS.join(', ')}, got '${level}'`);
    const envTimeout = Number(process.env.TFJS_ATTENTION_MPI_TIMEOUT_MS ?? NaN);
    this.timeoutMs = opts.timeoutMs ?? (Number.isFinite(envTimeout) ? envTimeout : 120000);
    check(Number.isFinite(this.timeoutMs) && this.timeoutMs >= 0, W, () => `timeoutMs (${this.timeoutMs}) must be a number >= 0`);
    this.chunkFloats = opts.chunkFloats ?? (1 << 22);
    check(Number.isInteger(this.chunkFloats) && this.chunkFloats >= 1 && this.chunkFloats <= 2 ** 30, W,
      () => `chunkFloats (${this.chunkFloats}) must be an integer in [1, 2^30]`);
    installExitHooks(mpi);
    const info = mpi.init(THREAD_LEVELS.indexOf(level));
    this.rank = info.rank;
    this.size = info.size;
    this.threadLevel = THREAD_LEVELS[info.threadLevel] ?? 'single';
    this.version = info.version.trim();
  }

  /**
   * Initializes MPI once per process (a process started without mpirun is a world of 1) and
   * returns the world communicator; later calls return the same one (their options ignored).
   * Throws naming the packages to install where MPI is missing.
   */
  static world(opts: MpiCommOptions = {}): MpiComm {
    if (world) return world;
    const why = mpiUnavailable();
    check(why === null, W, () => why!);
    world = new MpiComm(mpiBinding()!, opts);
    return world;
  }

  /** True once `world()` ran in this process. */
  static get initialized(): boolean { return world !== null; }

  get isRoot(): boolean { return this.rank === 0; }

  /** In place: `buf` becomes the element-wise sum of every rank's `buf` (same length on every rank). */
  allreduceSum(buf: Float32Array, timeoutMs = this.timeoutMs): Float32Array {
    check(buf instanceof Float32Array, `${W}.allreduceSum`, () => `buf must be a Float32Array, got ${Object.prototype.toString.call(buf)}`);
    this.mpi.allreduceSum(buf, timeoutMs, this.chunkFloats);
    this.allreducedFloats += buf.length;
    this.allreduceCalls++;
    return buf;
  }

  /** In place: every rank's `view` gets `root`'s bytes (same byte length on every rank). */
  broadcast<T extends ArrayBufferView>(view: T, root = 0, timeoutMs = this.timeoutMs): T {
    check(ArrayBuffer.isView(view) && !(view instanceof DataView), `${W}.broadcast`, () => 'view must be a typed array');
    check(Number.isInteger(root) && root >= 0 && root < this.size, `${W}.broadcast`, () => `root (${root}) must be a rank in [0, ${this.size})`);
    this.mpi.broadcast(view, root, timeoutMs);
    return view;
  }

  barrier(timeoutMs = this.timeoutMs): void {
    this.mpi.barrier(timeoutMs);
  }

  /**
   * Fails on every rank together: sums `failed` (0 or 1) over ranks and throws `[where]
   * message(count)` on every rank when any rank failed. The collective point of the two-phase steps.
   */
  agree(failed: boolean, where: string, message: (failedRanks: number) => string, timeoutMs = this.timeoutMs): void {
    const flag = new Float32Array([failed ? 1 : 0]);
    this.allreduceSum(flag, timeoutMs);
    check(flag[0] === 0, where, () => message(flag[0]));
  }

  /**
   * Checks that every rank holds the same `value` (a string, or typed arrays compared by their
   * bytes) as rank 0, through a 32-bit hash: one broadcast and one agreement allreduce. Throws on
   * every rank, naming `what` and how many ranks differ, when any does.
   */
  agreeSame(value: string | readonly ArrayBufferView[], where: string, what: string): void {
    const h = fnv1a(value);
    const mine = new Float32Array([h >>> 16, h & 0xffff]); // 16-bit halves: exact in float32
    const root = this.broadcast(mine.slice(), 0);
    this.agree(root[0] !== mine[0] || root[1] !== mine[1], where, (n) => `${what}: ${n} of ${this.size} ranks differ from rank 0`);
  }

  /** The first fatal error (a timeout, a signal), after which no collective runs; '' while usable. */
  get broken(): string { return this.mpi.state().broken; }

  /** MPI_Initialized / MPI_Finalized of this process and `broken`. */
  state(): { initialized: boolean; finalized: boolean; broken: string } { return this.mpi.state(); }

  /** MPI_Abort: ends every rank of the job with `code`. */
  abort(code = 1): never { return this.mpi.abort(code); }
}

/** 32-bit FNV-1a of a string's UTF-16 units or of typed arrays' bytes. */
export function fnv1a(value: string | readonly ArrayBufferView[]): number {
  let h = 0x811c9dc5;
  if (typeof value === 'string') {
    for (let i = 0; i < value.length; i++) h = Math.imul(h ^ value.charCodeAt(i), 0x01000193) >>> 0;
    return h;
  }
  for (const v of value) {
    const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    const words = Math.floor(bytes.length / 4);
    const u32 = v.byteOffset % 4 === 0 ? new Uint32Array(v.buffer, v.byteOffset, words) : new Uint32Array(bytes.slice(0, words * 4).buffer);
    for (let i = 0; i < words; i++) h = Math.imul(h ^ u32[i], 0x01000193) >>> 0;
    for (let i = words * 4; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193) >>> 0;
  }
  return h;
}

let hooked = false;

/** Finalize on exit (when usable) and on SIGTERM / SIGINT (with a 3 s watchdog). */
function installExitHooks(mpi: MpiBinding): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => { mpi.finalize(0, 1); });
  for (const [sig, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
    // Registered before init, so the binding's own handler (which wakes a waiting collective)
    // chains in front of Node's.
    process.on(sig, () => {
      mpi.finalize(3000, code);
      process.exit(code);
    });
  }
}
