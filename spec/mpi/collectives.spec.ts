/**
 * The MPI binding and the DataParallel API on 2 ranks under mpirun (spec/mpi/drivers/collectives.ts):
 * chunked in-place allreduce, broadcast from a non-zero root, barrier, one fused allreduce for
 * gradients + extras, weights-identical and layout checks failing every rank together, model.fit
 * through DataParallelOptimizer equal to one process on the global batch, a collective timing out
 * when a rank stops answering, MPI finalized on SIGTERM; and without MPI, a clear error naming
 * the packages.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bundle, mpirun, mpiSkipReason, tagged } from './mpi_support';

const skip = mpiSkipReason();
const maybe = skip ? it.skip : it;
if (skip) console.log(`skip spec/mpi/collectives: ${skip}`);

interface Check { rank: number; what: string; [k: string]: unknown }

describe('MPI collectives and DataParallel (2 ranks)', () => {
  maybe('allreduce, broadcast, barrier, gradient averaging, identical checks, model.fit', async () => {
    const job = await mpirun(2, await bundle('spec/mpi/drivers/collectives.ts'), ['collectives'], { limitMs: 60000 });
    const checks = tagged<Check>(job.stdout, 'CHECK');
    const of = (what: string) => [0, 1].map((r) => checks.find((c) => c.rank === r && c.what === what));
    expect({ code: job.code, stderr: job.code === 0 ? '' : job.stderr }).toEqual({ code: 0, stderr: '' });
    expect(of('world').map((c) => [c?.size, c?.threadLevel])).toEqual([[2, 'serialized'], [2, 'serialized']]);
    expect(of('allreduce').map((c) => c?.ok)).toEqual([true, true]);
    expect(of('broadcast').map((c) => [c?.ints, c?.f64])).toEqual(Array(2).fill([[7, -3, 2 ** 30], [Math.PI, 1e300]]));
    expect(of('barrier').every(Boolean)).toBe(true);
    expect(of('badRoot').map((c) => c?.error)).toEqual(Array(2).fill('[MpiComm.broadcast] root (2) must be a rank in [0, 2)'));
    expect(of('range').map((c) => c?.range)).toEqual([[0, 4], [4, 7]]);
    // [0,1,2] + [1,1,2] averaged; the extra (rank + 1) summed: 1 + 2.
    expect(of('grads').map((c) => [c?.grads, c?.extras, c?.calls])).toEqual(Array(2).fill([[0.5, 1, 2], [3], [2, 1]])); // one allreduce (the first call also agrees on the layout)
    expect(of('leaks').map((c) => c?.tensors)).toEqual([0, 0]);
    expect(of('differ').map((c) => c?.error)).toEqual(Array(2).fill(
      '[DataParallel] weights (hash of 1 variables): 1 of 2 ranks differ from rank 0'));
    expect(of('layoutFirst').map((c) => c?.error)).toEqual(Array(2).fill(
      '[DataParallel] the gradients (names, sizes and extras; every rank must build the same model): 1 of 2 ranks differ from rank 0'));
    expect(of('layoutLater').map((c) => c?.error)).toEqual([
      '[DataParallel] another rank sent other gradients (names, sizes or extras) than this one; every rank must build the same model and pass the same variables',
      '[DataParallel] this rank\'s gradients (2 tensors, 8 floats, 0 extras) are not those of the first call (1 tensors, 3 floats with extras); '
        + 'after changing the trainable variables call resetLayout() on every rank',
    ]);
    expect(of('layoutTensors').map((c) => c?.tensors)).toEqual([0, 0]);
    for (const c of of('fit')) expect(c!.maxRel as number).toBeLessThanOrEqual(1e-6);
  });

  maybe('a rank that stops answering fails the others at the timeout, and MPI stays closed after it', async () => {
    const job = await mpirun(2, await bundle('spec/mpi/drivers/collectives.ts'), ['timeout'], { limitMs: 60000 });
    const [c] = tagged<Check>(job.stdout, 'CHECK');
    expect(c.error).toBe('[mpi.allreduceSum] rank 0 of 2: no answer from the other ranks within 1500 ms (a rank died or stopped calling the same collective)');
    expect(c.ms as number).toBeGreaterThanOrEqual(1400);
    expect(c.ms as number).toBeLessThan(10000);
    expect(c.next).toMatch(/^\[mpi\.barrier\] the communicator is unusable after an earlier failure: \[mpi\.allreduceSum\]/);
  });
});

describe('MPI finalize on signals (2 ranks)', () => {
  maybe('SIGTERM to every rank (as Slurm stops a job): each finalizes MPI and exits 143', async () => {
    const marker = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mpi-sig-')), 'exit');
    const script = await bundle('spec/mpi/drivers/collectives.ts');
    const job = mpirun(2, script, ['idle', marker], { limitMs: 60000 });
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline && [0, 1].some((r) => !fs.existsSync(`${marker}.ready.${r}`))) await new Promise((r) => setTimeout(r, 100));
    for (const r of [0, 1]) process.kill(Number(fs.readFileSync(`${marker}.ready.${r}`, 'utf8')), 'SIGTERM');
    const done = await job;
    expect(done.ms).toBeLessThan(30000);
    const exits = [0, 1].map((r) => JSON.parse(fs.readFileSync(`${marker}.${r}`, 'utf8')));
    expect(exits).toEqual([0, 1].map((rank) => ({ rank, code: 143, mpi: { initialized: true, finalized: true, broken: '' } })));
  });
});

describe('without MPI', () => {
  it('MpiComm.world fails naming the packages to install; nothing else changes', () => {
    const prev = process.env.TFJS_ATTENTION_MPI_PATH;
    process.env.TFJS_ATTENTION_MPI_PATH = '/nonexistent/tfjs_attention_mpi.node';
    try {
      jest.isolateModules(() => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const { MpiComm } = require('../../lib/mpi/comm') as typeof import('../../lib/mpi/comm');
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const { DataParallel } = require('../../lib/training/data_parallel') as typeof import('../../lib/training/data_parallel');
        const msg = /^\[MpiComm\] the MPI binding is not available \(Cannot find module '\/nonexistent\/tfjs_attention_mpi\.node'.*\); install Open MPI: apt-get install openmpi-bin libopenmpi-dev/;
        expect(() => MpiComm.world()).toThrow(msg);
        expect(() => DataParallel.init()).toThrow(msg);
      });
    } finally {
      if (prev === undefined) delete process.env.TFJS_ATTENTION_MPI_PATH;
      else process.env.TFJS_ATTENTION_MPI_PATH = prev;
    }
  });
});
