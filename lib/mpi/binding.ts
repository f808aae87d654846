/**
 * Guarded loader of the MPI binding (native/mpi/, built at install by scripts/build-native.cjs
 * where Open MPI's headers are present). Nothing else in the package needs it: without it only
 * the MPI features fail, with `mpiUnavailable()`'s message.
 * `TFJS_ATTENTION_MPI_PATH=/path/x.node` loads another build.
 */
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { packageRoot } from '../util/package_root.js';

/** The binding's functions (native/mpi/mpi_binding.cc). Timeouts in ms, 0 = none. */
export interface MpiBinding {
  init(threadLevel: number): { rank: number; size: number; threadLevel: number; version: string };
  /** In place: every rank's `buf` becomes the element-wise sum over ranks. */
  allreduceSum(buf: Float32Array, timeoutMs: number, chunkFloats: number): void;
  /** Root's bytes of `view` to every rank's `view`. */
  broadcast(view: ArrayBufferView, root: number, timeoutMs: number): void;
  barrier(timeoutMs: number): void;
  /** MPI_Finalize; a watchdog ends the process with `exitCode` after `watchdogMs` (> 0). */
  finalize(watchdogMs: number, exitCode: number): boolean;
  abort(code: number): never;
  state(): { initialized: boolean; finalized: boolean; broken: string };
}

/** What to install where MPI is missing. */
export const MPI_INSTALL_HINT = 'apt-get install openmpi-bin libopenmpi-dev (Debian/Ubuntu), then `node scripts/build-native.cjs`';

let loadError = '';
function load(): MpiBinding | null {
  if (typeof process === 'undefined' || !process.versions?.node) {
    loadError = 'MPI runs in Node only';
    return null;
  }
  try {
    const req = createRequire(path.join(packageRoot, 'package.json'));
    const override = process.env.TFJS_ATTENTION_MPI_PATH;
    return req(override ? path.resolve(override) : path.join(packageRoot, 'native', 'mpi', 'build', 'Release', 'tfjs_attention_mpi.node')) as MpiBinding;
  } catch (e) {
    loadError = (e as Error).message.split('\n')[0];
    return null;
  }
}

let binding: MpiBinding | null | undefined;

/** The binding, loaded on first use (so importing this module costs nothing), or null. */
export function mpiBinding(): MpiBinding | null {
  if (binding === undefined) binding = load();
  return binding;
}

/** Null when MPI can be used, else why not and what to install. */
export function mpiUnavailable(): string | null {
  if (mpiBinding()) return null;
  return `the MPI binding is not available (${loadError || 'not built'}); install Open MPI: ${MPI_INSTALL_HINT}`;
}
