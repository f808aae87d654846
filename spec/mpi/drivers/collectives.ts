/**
 * Spec driver (under mpirun, 2+ ranks): the MPI binding's collectives and the DataParallel API.
 * Prints `CHECK {json}` lines for spec/mpi/collectives.spec.ts. Scenario from argv[2]:
 * `collectives` (allreduce chunked, broadcast from a non-zero root, barrier, DataParallel checks,
 * model.fit through DataParallelOptimizer vs one process on the global batch) or `timeout` (the
 * last rank skips a collective; the others must fail within their timeout) or `idle` (ranks wait
 * for a SIGTERM).
 */
import '../../../lib/backends/node_install.js';  // the native CPU kernels (Node entry)
import { writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { MpiComm } from '../../../lib/mpi/comm';
import { DataParallel, DataParallelOptimizer } from '../../../lib/training/data_parallel';

const out = (o: Record<string, unknown>) => console.log(`CHECK ${JSON.stringify(o)}`);
const error = (fn: () => void) => { try { fn(); return null; } catch (e) { return (e as Error).message; } };

function collectives(comm: MpiComm): void {
  const n = 12345; // odd, several 1000-float chunks
  const buf = Float32Array.from({ length: n }, (_, i) => (comm.rank + 1) * 0.5 + i);
  comm.allreduceSum(buf);
  const want = (i: number) => Array.from({ length: comm.size }, (_, r) => (r + 1) * 0.5 + i).reduce((s, x) => s + x, 0);
  out({ rank: comm.rank, what: 'allreduce', ok: buf.every((v, i) => v === want(i)), n, chunkFloats: comm.chunkFloats });
  const root = comm.size - 1;
  const ints = comm.broadcast(comm.rank === root ? Int32Array.from([7, -3, 2 ** 30]) : new Int32Array(3), root);
  const f64 = comm.broadcast(comm.rank === root ? Float64Array.from([Math.PI, 1e300]) : new Float64Array(2), root);
  out({ rank: comm.rank, what: 'broadcast', ints: Array.from(ints), f64: Array.from(f64) });
  comm.barrier();
  out({ rank: comm.rank, what: 'barrier' });
  out({ rank: comm.rank, what: 'badRoot', error: error(() => comm.broadcast(new Int32Array(1), comm.size)) });
}

function dataParallel(dp: DataParallel): void {
  const v = tf.variable(tf.tensor1d([1, 2, 3]), true, 'dp_w');
  out({ rank: dp.rank, what: 'range', range: dp.range(7) });
  // Gradients summed and averaged, extras summed, in one allreduce.
  const before = dp.comm.allreduceCalls;
  const r = dp.allreduceGradients({ dp_w: tf.tensor1d([dp.rank, 1, 2]) }, { average: true, extras: [dp.rank + 1] });
  const firstCalls = dp.comm.allreduceCalls - before; // the first call also agrees on the layout
  const mid = dp.comm.allreduceCalls;
  tf.dispose(dp.allreduceGradients({ dp_w: tf.tensor1d([dp.rank, 1, 2]) }, { average: true, extras: [dp.rank + 1] }).grads);
  out({ rank: dp.rank, what: 'grads', grads: Array.from(r.grads.dp_w.dataSync()), extras: r.extras, calls: [firstCalls, dp.comm.allreduceCalls - mid] });
  // No tensor leaks: gradients in, new ones out (inputs disposed); broadcastVariables, checkIdentical.
  const n0 = tf.memory().numTensors;
  tf.dispose(new DataParallel(dp.comm).allreduceGradients({ dp_w: tf.ones([3]) }, { average: true }).grads); // its own layout
  dp.broadcastVariables([v]);
  dp.checkIdentical([v]);
  out({ rank: dp.rank, what: 'leaks', tensors: tf.memory().numTensors - n0 });
  // Identical weights pass; one rank's change fails every rank.
  dp.checkIdentical([v]);
  if (dp.rank === dp.size - 1) v.assign(tf.tensor1d([1, 2, 3.0001]));
  out({ rank: dp.rank, what: 'differ', error: error(() => dp.checkIdentical([v])) });
  // Other gradients on one rank: at the first call (agreement), and later (the hash in the buffer,
  // a different length included); no tensor leaks.
  const n1 = tf.memory().numTensors;
  const last = dp.rank === dp.size - 1;
  const first = new DataParallel(dp.comm);
  out({ rank: dp.rank, what: 'layoutFirst', error: error(() => first.allreduceGradients({ [last ? 'dp_other' : 'dp_w']: tf.zeros([3]) })) });
  const later = new DataParallel(dp.comm);
  tf.dispose(later.allreduceGradients({ dp_w: tf.zeros([3]) }).grads);
  out({ rank: dp.rank, what: 'layoutLater', error: error(() => later.allreduceGradients(last ? { dp_w: tf.zeros([3]), extra: tf.zeros([5]) } : { dp_w: tf.zeros([3]) })) });
  tf.dispose(later.allreduceGradients({ dp_w: tf.ones([3]) }).grads); // still usable after
  out({ rank: dp.rank, what: 'layoutTensors', tensors: tf.memory().numTensors - n1 });
}

/** model.fit with DataParallelOptimizer on each rank's rows vs one fit on the global batch. */
async function fit(dp: DataParallel): Promise<void> {
  const make = () => {
    const m = tf.sequential({ layers: [tf.layers.dense({ units: 3, inputShape: [4], activation: 'tanh' }), tf.layers.dense({ units: 1 })] });
    m.setWeights(m.weights.map((w, i) => tf.tensor(Float32Array.from({ length: w.shape.reduce((a, b) => a * b, 1) }, (_, j) => Math.sin(1 + i * 7 + j)), w.shape)));
    return m;
  };
  const B = 8 * dp.size, xs = tf.tensor2d(Float32Array.from({ length: B * 4 }, (_, i) => Math.cos(i)), [B, 4]);
  const ys = tf.tensor2d(Float32Array.from({ length: B }, (_, i) => Math.sin(3 * i)), [B, 1]);
  const single = make();
  single.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
  await single.fit(xs, ys, { batchSize: B, epochs: 5, shuffle: false, verbose: 0 });
  const model = make();
  if (dp.rank !== 0) model.setWeights(model.weights.map((w) => tf.randomNormal(w.shape))); // fitCallback gives rank 0's
  model.compile({ optimizer: new DataParallelOptimizer(tf.train.sgd(0.1), dp), loss: 'meanSquaredError' });
  const [a, b] = dp.range(B);
  await model.fit(xs.slice(a, b - a), ys.slice(a, b - a), { batchSize: b - a, epochs: 5, shuffle: false, verbose: 0, callbacks: [dp.fitCallback(model)] });
  let worst = 0;
  single.getWeights().forEach((w, i) => {
    const x = w.dataSync(), y = model.getWeights()[i].dataSync();
    x.forEach((v, j) => { worst = Math.max(worst, Math.abs(v - y[j]) / Math.max(1e-6, Math.abs(v))); });
  });
  out({ rank: dp.rank, what: 'fit', maxRel: worst });
}

async function main(): Promise<void> {
  const scenario = process.argv[2];
  if (scenario === 'timeout') {
    const comm = MpiComm.world({ timeoutMs: 1500 });
    if (comm.rank === comm.size - 1) { // stops taking part, stays alive a while, then exits
      await new Promise((r) => setTimeout(r, 4000));
      process.exit(0);
    }
    const t0 = Date.now();
    const msg = error(() => comm.allreduceSum(new Float32Array(4)));
    out({ rank: comm.rank, what: 'timeout', error: msg, ms: Date.now() - t0, next: error(() => comm.barrier()) });
    process.exit(0);
  }
  if (scenario === 'idle') { // waits for a SIGTERM (as Slurm sends every task): lib/mpi/comm.ts finalizes and exits 143
    const comm = MpiComm.world();
    comm.barrier();
    // mpirun stops forwarding output once it is signalled: the exit record goes to a file.
    process.on('exit', (code) => writeFileSync(`${process.argv[3]}.${comm.rank}`, JSON.stringify({ rank: comm.rank, code, mpi: comm.state() })));
    writeFileSync(`${process.argv[3]}.ready.${comm.rank}`, String(process.pid)); // the spec signals these pids
    setTimeout(() => out({ rank: comm.rank, what: 'still running' }), 30000);
    return;
  }
  await import('@tensorflow/tfjs-backend-cpu').catch(() => null);
  await tf.setBackend('cpu');
  const comm = MpiComm.world({ chunkFloats: 1000 });
  out({ rank: comm.rank, what: 'world', size: comm.size, threadLevel: comm.threadLevel, version: comm.version.split(',')[0] });
  collectives(comm);
  const dp = new DataParallel(comm);
  dataParallel(dp);
  await fit(new DataParallel(comm)); // its own gradients layout
}

main().catch((e) => { console.error(e); process.exitCode = 2; });
