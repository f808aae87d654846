/**
 * One rank of the MPI benchmarks (bench/mpi.ts launches it under mpirun; prints `MPI_BENCH {json}` on rank 0):
 *
 *   mpirun -np 2 --oversubscribe node dist/bench/mpi_rank.js allreduce 4,16,64,256 [ITERS]
 *     per size (MB): median ms of the in-place float32 allreduce, alternating with a plain copy
 *     of the same buffer (Float32Array.set) timed on the same rank
 *   mpirun -np N --oversubscribe node dist/bench/mpi_rank.js train STEPS
 *     data-parallel training steps of the main job's model (batch 64 split over N ranks): median
 *     ms of the whole step, of the wait for the slowest rank (a barrier) and of the allreduce after it
 */
import '../lib/backends/node_install.js';  // the native CPU kernels (Node entry)
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../lib/backends/select.js';
import { SeededRng } from '../lib/generation/rng.js';
import { MpiComm } from '../lib/mpi/comm.js';
import { installMatMulGradient, registerTrainingKernels } from '../lib/training/index.js';
import { maskedCrossEntropy } from '../lib/training/loss.js';
import { DataParallel } from '../lib/training/data_parallel.js';
import { modelRaggedTrain } from '../models/train_forward.js';
import { packBatch, sampleExamples } from '../train/data.js';
import { stepShares } from '../train/data_parallel.js';
import { DEFAULTS, buildModel } from '../train/experiment.js';
import { DEFAULT_TASK } from '../train/task.js';

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };

function allreduce(comm: MpiComm, sizesMb: number[], iters: number): Record<string, unknown> {
  const rows = sizesMb.map((mb) => {
    const n = (mb * 1024 * 1024) / 4;
    const buf = new Float32Array(n).fill(1), copy = new Float32Array(n);
    comm.allreduceSum(buf); // warm-up: connections, page faults
    copy.set(buf);
    const ar: number[] = [], cp: number[] = [];
    for (let i = 0; i < iters; i++) {
      comm.barrier();
      let t = performance.now();
      comm.allreduceSum(buf);
      ar.push(performance.now() - t);
      t = performance.now();
      copy.set(buf);
      cp.push(performance.now() - t);
    }
    return { mb, allreduceMs: median(ar), copyMs: median(cp) };
  });
  return { what: 'allreduce', ranks: comm.size, rows };
}

async function train(dp: DataParallel, steps: number): Promise<Record<string, unknown>> {
  await useBackend('cpu');
  registerTrainingKernels();
  installMatMulGradient(); // as the main job does
  const model = buildModel(DEFAULTS, DEFAULT_TASK);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const opt = tf.train.adam(1e-3);
  const rng = new SeededRng(1);
  const run = { dp, save: null, accumulate: 1, lora: 0 };
  const step: number[] = [], reduce: number[] = [], wait: number[] = [];
  for (let s = 0; s < steps + 2; s++) {
    const [share] = stepShares(run, sampleExamples(rng, DEFAULT_TASK, DEFAULTS.batch, new Set()));
    const b = packBatch(share.examples);
    dp.comm.barrier();
    const t0 = performance.now();
    let tr = 0, tw = 0;
    tf.tidy(() => {
      const ys = tf.tensor1d(b.targets, 'int32'), ws = tf.tensor1d(b.weights);
      const { grads } = tf.variableGrads(() => tf.mul(maskedCrossEntropy(modelRaggedTrain(model, b.ids, b.rowOffsets), ys, ws), share.lossScale) as tf.Scalar, vars);
      let t1 = performance.now();
      dp.comm.barrier(); // the wait for the slower rank (its share had more tokens), apart from the transfer
      tw = performance.now() - t1;
      t1 = performance.now();
      const r = dp.allreduceGradients(grads);
      tr = performance.now() - t1;
      opt.applyGradients(Object.entries(r.grads).map(([name, tensor]) => ({ name, tensor })));
    });
    if (s >= 2) { step.push(performance.now() - t0); reduce.push(tr); wait.push(tw); } // 2 warm-up steps
  }
  return { what: 'train', ranks: dp.size, batch: DEFAULTS.batch, floats: vars.reduce((a, v) => a + v.size, 0), stepMs: median(step), allreduceMs: median(reduce), waitMs: median(wait) };
}

async function main(): Promise<void> {
  const [mode, arg, iters] = process.argv.slice(2);
  const comm = MpiComm.world();
  const r = mode === 'allreduce' ? allreduce(comm, arg.split(',').map(Number), Number(iters ?? 7))
    : mode === 'train' ? await train(new DataParallel(comm), Number(arg ?? 10))
      : (() => { throw new Error(`[mpi_rank] mode must be allreduce or train, got '${mode}'`); })();
  if (comm.isRoot) console.log(`MPI_BENCH ${JSON.stringify(r)}`);
}

main().catch((e) => { console.error(e instanceof Error ? e.message : e); process.exitCode = 2; });
