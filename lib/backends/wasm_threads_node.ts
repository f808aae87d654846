/**
 * Node's worker host for the WebAssembly SIMD kernels' threads (kernels/wasm/simd_threads.ts): worker_threads
 * Workers running the worker source with `eval`, unref'd so an idle pool never keeps the process alive.
 * Installed by lib/backends/node_install.ts (the Node entry); browsers use their own `Worker`.
 */
import * as os from 'node:os';
import { Worker } from 'node:worker_threads';

import { setWasmWorkerHost } from '../../kernels/wasm/simd_threads.js';

setWasmWorkerHost({
  cores: typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length,
  spawn(source) {
    const w = new Worker(source, { eval: true });
    w.unref();
    return {
      postMessage: (m) => w.postMessage(m),
      onMessage: (fn) => { // a listener refs the worker's port again: unref after it
        w.on('message', fn); w.on('error', (e) => fn({ error: String((e as Error)?.message ?? e) }));
        w.unref();
      },
      terminate: () => { void w.terminate(); },
    };
  },
});
