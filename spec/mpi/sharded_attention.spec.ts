/**
 * MpiShardedAttention (tensor parallel over MPI ranks) on 2 ranks under mpirun: equal to the
 * unsharded layer (<= 1e-5) and the golden outputs on every attention fixture; a rank that throws
 * fails the call on every rank with no cache shard moved, and the retry is exact; a rank killed
 * mid-call fails the survivor cleanly, through mpirun's SIGTERM or, with --enable-recovery, the
 * collective's timeout. Never a hang.
 */
import * as path from 'node:path';
import { ROOT, bundle, mpirun, mpiSkipReason, tagged } from './mpi_support';

const skip = mpiSkipReason();
const maybe = skip ? it.skip : it;
if (skip) console.log(`skip spec/mpi/sharded_attention: ${skip}`);
const FIXTURES = path.join(ROOT, 'spec', 'fixtures', 'attention');

interface Drill { rank: number; failed?: boolean; error?: string; ms?: number; cacheLength?: number; freeBefore?: number; freeAfter?: number; retry?: boolean; vsUnsharded?: number }

describe('MpiShardedAttention (2 ranks)', () => {
  maybe('equals the unsharded layer and the golden outputs on every attention fixture', async () => {
    const job = await mpirun(2, await bundle('bin/conformance/mpi_sharded_fixture.ts'), [FIXTURES], { limitMs: 60000 });
    const [r] = tagged<{ ranks: number; results: { name: string; golden: number; vsUnsharded: number; passed: boolean; skipped?: string }[] }>(job.stdout, 'MPI_RESULT');
    expect({ code: job.code, err: job.code === 0 ? '' : job.stderr.slice(-2000) }).toEqual({ code: 0, err: '' });
    expect(r.ranks).toBe(2);
    expect(r.results.length).toBeGreaterThanOrEqual(15);
    for (const x of r.results) {
      expect({ name: x.name, skipped: x.skipped, golden: x.golden <= 1e-4, vsUnsharded: x.vsUnsharded <= 1e-5 })
        .toEqual({ name: x.name, skipped: undefined, golden: true, vsUnsharded: true });
    }
  });

  maybe('a rank that throws fails the call on every rank; no cache shard moves; the retry is exact', async () => {
    const job = await mpirun(2, await bundle('bin/conformance/mpi_fault.ts'), [path.join(FIXTURES, 'llama_gqa'), 'throw'], { limitMs: 60000 });
    const d = tagged<Drill>(job.stdout, 'DRILL');
    expect(job.code).toBe(0);
    const failed = [0, 1].map((r) => d.find((x) => x.rank === r && x.failed !== undefined)!);
    expect(failed.map((x) => x.error)).toEqual([
      '[MpiShardedAttention] 1 of 2 ranks failed; no cache shard moved',
      '[MpiShardedAttention] rank 1 failed: injected fault (after this rank wrote its K/V slots); no cache shard moved',
    ]);
    for (const x of failed) expect([x.cacheLength, x.freeAfter]).toEqual([5, x.freeBefore]);
    const retry = [0, 1].map((r) => d.find((x) => x.rank === r && x.retry)!);
    for (const x of retry) {
      expect(x.cacheLength).toBe(6);
      expect(x.vsUnsharded).toBeLessThanOrEqual(1e-5);
    }
  });

  maybe('ranks called with other arguments refuse together before computing; the retry is exact', async () => {
    const job = await mpirun(2, await bundle('bin/conformance/mpi_fault.ts'), [path.join(FIXTURES, 'llama_gqa'), 'mismatch'], { limitMs: 60000 });
    const d = tagged<Drill>(job.stdout, 'DRILL');
    expect(job.code).toBe(0);
    const failed = [0, 1].map((r) => d.find((x) => x.rank === r && x.failed !== undefined)!);
    expect(failed.map((x) => x.error)).toEqual([
      '[MpiShardedAttention] 1 of 2 ranks rejected the call (see their error); nothing ran',
      '[MpiShardedAttention] rank 1 was called with other sequences, token counts or cache lengths than rank 0 (every rank must make the same calls)',
    ]);
    for (const x of failed) expect([x.cacheLength, x.freeAfter]).toEqual([5, x.freeBefore]);
    for (const r of [0, 1]) expect(d.find((x) => x.rank === r && x.retry)!.vsUnsharded).toBeLessThanOrEqual(1e-5);
  });

  maybe('a rank holding another layer fails create on every rank', async () => {
    const job = await mpirun(2, await bundle('bin/conformance/mpi_fault.ts'), [path.join(FIXTURES, 'llama_gqa'), 'layer'], { limitMs: 60000 });
    const d = tagged<Drill>(job.stdout, 'DRILL');
    expect(d.sort((a, b) => a.rank - b.rank).map((x) => x.error)).toEqual(Array(2).fill(
      '[MpiShardedAttention] the layer (config and weights; every rank must build the same one): 1 of 2 ranks differ from rank 0'));
  });

  maybe('a rank killed mid-call: mpirun ends the job and the survivor fails with a clear error, no hang', async () => {
    const job = await mpirun(2, await bundle('bin/conformance/mpi_fault.ts'), [path.join(FIXTURES, 'llama_gqa'), 'kill', '--timeout-ms', '30000'], { limitMs: 60000 });
    const [d] = tagged<Drill>(job.stdout, 'DRILL');
    expect(job.code).not.toBe(0);
    expect(d.rank).toBe(0);
    expect(d.error).toMatch(/^\[MpiShardedAttention\] rank 0: the call failed, no cache shard moved on this rank \(\[mpi\.allreduceSum\] rank 0: interrupted by SIGTERM/);
    expect(d.cacheLength).toBe(5);
    expect(d.ms!).toBeLessThan(20000); // well before the 30 s timeout: mpirun's SIGTERM woke the collective
  });

  maybe('a rank killed mid-call under --enable-recovery: the survivor fails at the collective timeout', async () => {
    const job = await mpirun(2, await bundle('bin/conformance/mpi_fault.ts'), [path.join(FIXTURES, 'llama_gqa'), 'kill', '--timeout-ms', '2000'],
      { limitMs: 60000, mpiArgs: ['--enable-recovery'] });
    const [d] = tagged<Drill>(job.stdout, 'DRILL');
    expect(d.rank).toBe(0);
    expect(d.error).toBe('[MpiShardedAttention] rank 0: the call failed, no cache shard moved on this rank ([mpi.allreduceSum] rank 0 of 2: '
      + 'no answer from the other ranks within 2000 ms (a rank died or stopped calling the same collective)); MPI is unusable, exit this rank');
    expect(d.cacheLength).toBe(5);
    expect(d.ms!).toBeGreaterThanOrEqual(1900);
  });
});
