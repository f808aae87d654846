/**
 * A parent process for the shard-worker orphan spec: starts a process-transport ShardedAttention
 * on two cpu workers, runs one call, prints `ready <pid> <workerPids...>` and waits to be killed.
 */
import * as tf from '@tensorflow/tfjs';
import { AttentionWithRope } from '../../../lib/attention/attention_with_rope';
import { parseDevices } from '../../../lib/sharding/devices';
import { ShardedAttention } from '../../../lib/sharding/sharded_attention';

async function main(): Promise<void> {
  await tf.setBackend('cpu');
  const layer = new AttentionWithRope({
    rope: { headDim: 16, theta: 10000, maxSeqLen: 64 }, numAttentionHeads: 4, numKeyValueHeads: 2, hiddenSize: 32,
    kvParams: { nKvHeads: 2, headDim: 16, pageSize: 4, numLayers: 1, numPages: 16 },
  });
  layer.build([null, 32]);
  const tp = await ShardedAttention.create(layer, parseDevices('cpu,cpu'), { transport: 'process' });
  tp.addSequence(0);
  (await tp.callRagged(new Float32Array(3 * 32).fill(0.5), [0], [3])).dispose();
  console.log(`ready ${process.pid} ${tp.workerPids.join(' ')}`);
  setInterval(() => undefined, 1000);
}
main().catch((e) => { console.error(e); process.exit(1); });
