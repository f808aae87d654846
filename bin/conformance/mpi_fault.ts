/**
 * Fault drill of MpiShardedAttention under mpirun (spec/mpi runs it):
 *
 *   mpirun -np 2 --oversubscribe node dist/bin/conformance/mpi_fault.js FIXTURE_DIR throw|kill|mismatch|layer [--timeout-ms N]
 *
 * Every rank shards the fixture's layer and prefills 5 tokens of sequence 0. Then the last rank
 * fails the next decode step: `throw` (an exception after writing its K/V slots: every rank must
 * throw, no cache shard moves, and the retried step must equal the unsharded layer) or `kill`
 * (SIGKILL mid-call: the survivors must fail with an error, not hang), `mismatch` (the last rank
 * asks for 2 new tokens where rank 0 asks for 1: every rank must refuse before computing) or
 * `layer` (the last rank's layer has one weight changed: create must fail on every rank). Each rank prints
 * `DRILL {json}` lines: its error, cache length, free pages, and the retry's error vs unsharded.
 */
import '../../lib/backends/node_install.js';  // the native CPU kernels (Node entry)
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { AttentionWithRope } from '../../lib/attention/attention_with_rope.js';
import { useBackend } from '../../lib/backends/select.js';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache.js';
import { MpiComm } from '../../lib/mpi/comm.js';
import { MpiShardedAttention } from '../../lib/sharding/mpi_sharded_attention.js';
import { fixtureWeights, layerArgsFromFixture } from './attention_fixture.js';
import { loadAttentionFixture } from './attention_fixture_files.js';

const say = (rank: number, o: Record<string, unknown>) => console.log(`DRILL ${JSON.stringify({ rank, ...o })}`);

async function main(argv: string[]): Promise<void> {
  const [dir, mode] = argv;
  if (!dir || !['throw', 'kill', 'mismatch', 'layer'].includes(mode)) throw new Error(`[mpi_fault] usage: FIXTURE_DIR throw|kill|mismatch|layer [--timeout-ms N], got ${JSON.stringify(argv)}`);
  const t = argv.indexOf('--timeout-ms');
  const timeoutMs = t >= 0 ? Number(argv[t + 1]) : 5000;
  await useBackend('cpu');
  const comm = MpiComm.world({ timeoutMs });
  const f = loadAttentionFixture(dir);
  const H = f.config.hidden_size as number;
  const args = layerArgsFromFixture(f.config, 16);
  const layer = new AttentionWithRope(args);
  layer.setHfWeights(fixtureWeights(f));
  const ref = new PagedKVCache(args.kvParams);
  const unsharded = (x: tf.Tensor2D, n: number) => {
    const kv = ref.fetch([0], [n]);
    const y = layer.callRagged(0, x, kv);
    ref.step(kv);
    return y;
  };
  const last = comm.rank === comm.size - 1;
  if (mode === 'layer') {
    if (last) layer.oProj!.kernel.write(tf.add(layer.oProj!.kernel.read(), 1e-3));
    try { MpiShardedAttention.create(layer, { comm }); say(comm.rank, { failed: false }); } catch (e) { say(comm.rank, { failed: true, error: (e as Error).message }); }
    return;
  }
  const tp = MpiShardedAttention.create(layer, { comm });
  tp.addSequence(0); ref.addSequence(0);
  const x0 = tf.randomNormal([5, H], 0, 1, 'float32', 1) as tf.Tensor2D, x1 = tf.randomNormal([1, H], 0, 1, 'float32', 2) as tf.Tensor2D;
  tp.callRagged(x0, [0], [5]).dispose();
  unsharded(x0, 5).dispose();
  const freeBefore = tp.numFreePages;
  if (last && (mode === 'throw' || mode === 'kill')) tp.injectFault(mode);
  const t0 = Date.now();
  try {
    tp.callRagged(x1, [0], [mode === 'mismatch' && last ? 2 : 1]).dispose();
    say(comm.rank, { failed: false });
  } catch (e) {
    say(comm.rank, { failed: true, error: (e as Error).message, ms: Date.now() - t0, cacheLength: tp.cacheLength(0), freeBefore, freeAfter: tp.numFreePages });
  }
  if (mode === 'kill') { process.exitCode = 3; return; } // MPI is unusable now: exit (finalize is skipped)
  const y = tp.callRagged(x1, [0], [1]); // the same step again, no fault
  const want = unsharded(x1, 1);
  const got = y.dataSync() as Float32Array, w = want.dataSync() as Float32Array;
  let d = 0, m = 0;
  for (let i = 0; i < w.length; i++) { d = Math.max(d, Math.abs(got[i] - w[i])); m = Math.max(m, Math.abs(w[i])); }
  say(comm.rank, { retry: true, vsUnsharded: d / m, cacheLength: tp.cacheLength(0) });
  tp.dispose();
  layer.dispose();
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 2;
  });
}
