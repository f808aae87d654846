/**
 * The channel from a worker to its main thread: worker_threads' parentPort, or the IPC channel of
 * a child process. A process worker whose parent is gone exits quietly (code 0): no EPIPE trace
 * from a reply or from writing to the inherited stdout / stderr. Shared by the shard workers
 * (worker.ts) and the pipeline stage workers (models/pipeline/stage_worker.ts).
 */
import { parentPort } from 'node:worker_threads';

export interface WorkerPort {
  on(ev: 'message', fn: (m: never) => void): void;
  postMessage(r: unknown): void;
  close(): void;
}

export function workerPort(): WorkerPort {
  if (parentPort) return parentPort as unknown as WorkerPort;
  process.on('disconnect', () => process.exit(0));
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => process.exit(0));
  return {
    on: (ev, fn) => process.on(ev, fn as (m: unknown) => void),
    postMessage: (r) => { if (process.connected) process.send!(r, undefined, undefined, (e) => { if (e) process.exit(0); }); },
    close: () => process.disconnect(),
  };
}
