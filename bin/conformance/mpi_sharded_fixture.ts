/**
 * The golden attention fixtures through MpiShardedAttention (tensor parallel over MPI ranks):
 *
 *   mpirun -np 2 --oversubscribe node dist/bin/conformance/mpi_sharded_fixture.js DIR... [--backend cpu|wasm]
 *
 * Every rank runs every fixture (fixtures with fewer query heads than ranks are skipped, named);
 * rank 0 also runs the unsharded layer and prints one line per fixture (error vs the golden
 * outputs and vs the unsharded layer), then `N passed, M failed`, and `MPI_RESULT {json}`.
 * Exit status 0 when every fixture passed.
 */
import '../../lib/backends/node_install.js';  // the native CPU kernels (Node entry)
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { AttentionWithRope } from '../../lib/attention/attention_with_rope.js';
import { useBackend } from '../../lib/backends/select.js';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache.js';
import { MpiComm } from '../../lib/mpi/comm.js';
import { MpiShardedAttention } from '../../lib/sharding/mpi_sharded_attention.js';
import { type FixtureStep, TOLERANCE, fixtureWeights, layerArgsFromFixture } from './attention_fixture.js';
import { loadAttentionFixture } from './attention_fixture_files.js';

export interface MpiFixtureResult { name: string; golden: number; vsUnsharded: number; passed: boolean; skipped?: string }

function relErr(got: Float32Array, want: Float32Array): number {
  let d = 0, m = 0;
  for (let i = 0; i < want.length; i++) { d = Math.max(d, Math.abs(got[i] - want[i])); m = Math.max(m, Math.abs(want[i])); }
  return got.some(Number.isNaN) ? Infinity : d / m;
}

/** One fixture folder on every rank; rank 0's result (the others' numbers are the same outputs). */
export function runMpiShardedFixture(dir: string, comm: MpiComm): MpiFixtureResult {
  const f = loadAttentionFixture(dir);
  const heads = f.config.num_attention_heads as number;
  if (heads < comm.size) return { name: f.name, golden: 0, vsUnsharded: 0, passed: true, skipped: `${heads} query heads < ${comm.size} ranks` };
  const args = layerArgsFromFixture(f.config, 16);
  const layer = new AttentionWithRope(args);
  layer.setHfWeights(fixtureWeights(f));
  const tp = MpiShardedAttention.create(layer, { comm });
  const cache = new PagedKVCache(args.kvParams);
  let golden = 0, vsUnsharded = 0;
  try {
    for (const s of f.config.steps as FixtureStep[]) {
      const seqIds = s.seq_ids ?? s.start_positions.map((_, b) => b);
      for (const id of seqIds) if (!tp.hasSequence(id)) { tp.addSequence(id); cache.addSequence(id); }
      const counts = seqIds.map((_, b) => s.input_row_offsets[b + 1] - s.input_row_offsets[b]);
      const input = f.tensors.get(s.input)!;
      const hidden = tf.tensor2d(input.data as Float32Array, input.shape as [number, number]); // [T, hidden]
      const kv = cache.fetch(seqIds, counts);
      if (s.materialize) {
        tp.materializeKvFromHidden(comm.isRoot ? hidden : null, seqIds, counts);
        layer.materializeKvFromHidden(0, hidden, kv);
      } else {
        const out = tp.callRagged(comm.isRoot ? hidden : null, seqIds, counts); // [T, hidden], summed over ranks
        const ref = layer.callRagged(0, hidden, kv); // [T, hidden], unsharded
        const got = out.dataSync() as Float32Array;
        golden = Math.max(golden, relErr(got, f.tensors.get(s.expected!)!.data as Float32Array));
        vsUnsharded = Math.max(vsUnsharded, relErr(got, ref.dataSync() as Float32Array));
        tf.dispose([out, ref]);
      }
      cache.step(kv);
      hidden.dispose();
    }
  } finally {
    tp.dispose();
    layer.dispose();
  }
  return { name: f.name, golden, vsUnsharded, passed: golden <= TOLERANCE && vsUnsharded <= 1e-5 };
}

async function main(argv: string[]): Promise<number> {
  let backend = 'cpu';
  const dirs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--backend') backend = argv[++i];
    else dirs.push(argv[i]);
  }
  if (dirs.length === 0) throw new Error('[mpi_sharded_fixture] give one or more fixture folders (or a folder of them)');
  const cases = dirs.flatMap((d) => (fs.existsSync(path.join(d, 'config.json')) ? [d]
    : fs.readdirSync(d).sort().map((x) => path.join(d, x)).filter((x) => fs.existsSync(path.join(x, 'config.json')))));
  await useBackend(backend);
  const comm = MpiComm.world();
  const results = cases.map((c) => runMpiShardedFixture(c, comm));
  if (comm.isRoot) {
    for (const r of results) {
      console.log(r.skipped ? `SKIP ${r.name}: ${r.skipped}`
        : `${r.passed ? 'PASS' : 'FAIL'} ${r.name}: golden ${r.golden.toExponential(1)}, vs unsharded ${r.vsUnsharded.toExponential(1)} (${comm.size} ranks, ${tf.getBackend()})`);
    }
    const ran = results.filter((r) => !r.skipped);
    console.log(`${ran.filter((r) => r.passed).length} passed, ${ran.filter((r) => !r.passed).length} failed, ${results.length - ran.length} skipped`);
    console.log(`MPI_RESULT ${JSON.stringify({ ranks: comm.size, results })}`);
  }
  return results.every((r) => r.passed) ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }).catch((e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 2;
  });
}
