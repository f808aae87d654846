/**
 * Pipeline-parallel whole model through WebGPU (issue 16): a checkpoint (make_random_llama.py: the
 * Llama-3.2-1B shape) split into 2 stages, one worker process per GPU (isolateNvidiaGpu hides the
 * other GPU), against the whole model on one GPU in this process (the fused whole-model kernels,
 * models/fused_forward.ts, as the stages use). Rows, medians:
 * - batched decode: B sequences (default 32) holding CTX tokens (default 1024): each timed unit forks
 *   the B prefilled roots (pages shared, copy on write), runs STEPS greedy steps, releases the forks;
 *   the pipeline decodes MICRO groups of sequences pipelined across steps (PipelineModel.decode);
 *   tokens/s = B * STEPS / time;
 * - prefill PB x PT (default 8 x 2048) on fresh sequences.
 * Exactness: greedy tokens of the decode and max |logits| difference of a prefill, pipeline vs one
 * GPU. nvidia-smi per GPU while each side is live.
 *
 * usage: node pipeline_gpu.mjs CKPT_DIR [backend=webgpu]
 *   env: B, CTX, STEPS, PB, PT, MICRO (micro-batches, default 4), ITERS (default 5)
 *   here on lavapipe: B=4 CTX=32 STEPS=2 PB=2 PT=64 ITERS=2 node .device/pp/s/pipeline_gpu.mjs spec/fixtures/models/tiny_llama
 */
import { execSync } from 'node:child_process';
import '../../lib/backends/node_install.js'; // Dawn WebGPU and the native addon in this process
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../lib/backends/select.js';
import { PipelineModel, type PipelineOptions } from '../../models/pipeline/pipeline_model.js';
import { parseDevices } from '../../lib/sharding/devices.js';
import { isolateNvidiaGpu } from '../../lib/sharding/shard_worker.js';
import { loadPretrained } from '../../models/load.js';
import { fusedForwardSupported } from '../../models/fused_forward.js';
import type { DecoderForCausalLM } from '../../models/decoder_lm.js';

const env = (k: string, d: number) => Number(process.env[k] ?? d);
const B = env('B', 32), CTX = env('CTX', 1024), STEPS = env('STEPS', 8), PB = env('PB', 8), PT = env('PT', 2048);
const MICRO = env('MICRO', 4), ITERS = env('ITERS', 5);
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

function smi(tag: string): void {
  if (!fs.existsSync('/dev/nvidia0')) return;
  try {
    const out = execSync('nvidia-smi --query-gpu=index,memory.used,utilization.gpu --format=csv,noheader', { encoding: 'utf8' });
    console.log(`nvidia-smi ${tag}: ${out.trim().split('\n').join(' | ')}`);
  } catch (e) { console.log(`nvidia-smi ${tag}: failed ${(e as Error).message.split('\n')[0]}`); }
}

/** Seeded token ids in [1, vocab). */
function ids(n: number, seed: number, vocab: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => { s = (s * 1664525 + 1013904223) >>> 0; return 1 + (s % (vocab - 1)); });
}

/** The two sides behind one interface: a step of (ids, seqs, counts) -> greedy tokens of each sequence's last row. */
interface Side {
  name: string;
  add(): number; fork(src: number): number; release(id: number): void;
  step(tokens: number[], seqs: number[], counts: number[]): Promise<Int32Array>;
  /** STEPS greedy tokens of each sequence from `last`. */
  decode(seqs: number[], last: number[], steps: number): Promise<number[][]>;
  logits(tokens: number[], seqs: number[], counts: number[]): Promise<Float32Array>;
}

function wholeModelSide(model: DecoderForCausalLM, numPages: number): Side {
  const cache = model.createCache({ numPages });
  const run = async (tokens: number[], seqs: number[], counts: number[], argmax: boolean) => {
    const kv = cache.fetch(seqs, counts);
    const last: number[] = [];
    let at = 0;
    for (const c of counts) { at += c; last.push(at - 1); }
    const logits = model.forwardRagged(tokens, kv, last); // [B, vocab]
    cache.step(kv);
    const out = argmax ? tf.argMax(logits, 1) : logits;
    const data = await out.data();
    tf.dispose([logits, out]);
    return data;
  };
  const step = async (t: number[], s: number[], c: number[]) => Int32Array.from(await run(t, s, c, true) as Int32Array);
  return {
    name: '1 GPU, whole model in this process',
    add: () => cache.addSequence(), fork: (s) => cache.forkSequence(s), release: (s) => cache.releaseSequence(s),
    step,
    decode: async (seqs, last, steps) => { // one batched step after another
      const out: number[][] = seqs.map(() => []);
      for (let i = 0; i < steps; i++) {
        last = Array.from(await step(last, seqs, seqs.map(() => 1)));
        last.forEach((v, b) => out[b].push(v));
      }
      return out;
    },
    logits: async (t, s, c) => Float32Array.from(await run(t, s, c, false) as Float32Array),
  };
}

function pipelineSide(pipe: PipelineModel, name: string): Side {
  return {
    name,
    add: () => pipe.addSequence(), fork: (s) => pipe.forkSequence(s), release: (s) => pipe.releaseSequence(s),
    step: async (t, s, c) => ((await pipe.forward(t, s, c, 'argmax')) as { tokens: Int32Array }).tokens,
    decode: (seqs, last, steps) => pipe.decode(seqs, last, steps), // groups pipelined across steps
    logits: async (t, s, c) => {
      const l = ((await pipe.forward(t, s, c, 'logits')) as { logits: tf.Tensor2D }).logits;
      const d = l.dataSync() as Float32Array; // the main thread's cpu backend holds it
      l.dispose();
      return d;
    },
  };
}

/** Decode and prefill rows of one side; returns medians and the greedy tokens for the check. */
async function measure(side: Side, vocab: number): Promise<{ decodeTokS: number; prefillMs: number; tokens: number[][]; logits: Float32Array }> {
  // Roots: B sequences of CTX tokens, prefilled in chunks of at most 4 sequences.
  const roots = Array.from({ length: B }, () => side.add());
  for (let b0 = 0; b0 < B; b0 += 4) {
    const group = roots.slice(b0, b0 + 4);
    await side.step(group.flatMap((_, j) => ids(CTX, 100 + b0 + j, vocab)), group, group.map(() => CTX));
  }
  const decodeUnit = async (): Promise<number[][]> => {
    const forks = roots.map((r) => side.fork(r));
    try { return await side.decode(forks, forks.map((_, b) => 1 + b), STEPS); } finally { forks.forEach((f) => side.release(f)); }
  };
  const tokens = await decodeUnit(); // warm-up and the tokens for the check
  const dec: number[] = [];
  for (let i = 0; i < ITERS; i++) { const t = performance.now(); await decodeUnit(); dec.push(performance.now() - t); }
  const prefillUnit = async (seed: number) => {
    const seqs = Array.from({ length: PB }, () => side.add());
    try { await side.step(seqs.flatMap((_, j) => ids(PT, seed + j, vocab)), seqs, seqs.map(() => PT)); } finally { seqs.forEach((s) => side.release(s)); }
  };
  await prefillUnit(7);
  const pre: number[] = [];
  for (let i = 0; i < ITERS; i++) { const t = performance.now(); await prefillUnit(7); pre.push(performance.now() - t); }
  const probe = side.add(); // logits of one prefill for the exactness check
  const logits = await side.logits(ids(Math.min(PT, 256), 5, vocab), [probe], [Math.min(PT, 256)]);
  side.release(probe);
  roots.forEach((r) => side.release(r));
  const decodeTokS = (B * STEPS) / (median(dec) / 1000);
  console.log(`${side.name}: decode ${B} x ${CTX} ctx: ${decodeTokS.toFixed(1)} tok/s (units of ${STEPS} steps, ms: ${dec.map((v) => v.toFixed(0)).join(' ')}); ` +
    `prefill ${PB}x${PT}: median ${median(pre).toFixed(1)} ms (${pre.map((v) => v.toFixed(0)).join(' ')})`);
  return { decodeTokS, prefillMs: median(pre), tokens, logits };
}

async function main(): Promise<void> {
  const [dir, backend = 'webgpu'] = process.argv.slice(2);
  await useBackend('cpu'); // the pipeline's logits land here (webgpu in Node has no dataSync)
  const numPages = Math.ceil(((B + 1) * (CTX + STEPS + 16) + PB * PT + 512) / 16) + 8;
  const isolate = backend === 'webgpu' && fs.existsSync('/dev/nvidia0') && process.env.ISOLATE !== '0';
  const results: Record<string, Awaited<ReturnType<typeof measure>>> = {};
  const opts = (devs: string, micro: number): PipelineOptions => ({
    devices: parseDevices(devs), transport: 'process', microBatches: micro, numPages, pageSize: 16,
    ...(isolate ? { spawnCommand: isolateNvidiaGpu } : {}),
  });
  for (const [label, devs, micro] of [['2 GPUs, 2 stages', `${backend}:0,${backend}:1`, MICRO], ['1 GPU, 1 stage process', `${backend}:0`, 1]] as const) {
    const t0 = performance.now();
    const pipe = await PipelineModel.fromPretrained(dir, opts(devs, micro));
    try {
      console.log(`${label}: started in ${(performance.now() - t0).toFixed(0)} ms, layers ${JSON.stringify(pipe.layerRanges)}, backends ${pipe.backends}, activations via ${pipe.dataPath}, ${micro} micro-batches`);
      smi(`${label} live`);
      results[label] = await measure(pipelineSide(pipe, label), (await readVocab(dir)));
      console.log(`${label}: last call per-stage compute ms ${pipe.lastCallStats?.stageMs.map((v) => v.toFixed(1)).join(' / ')}`);
      smi(`${label} after timing`);
    } finally { await pipe.dispose(); }
  }
  await useBackend(backend);
  const t0 = performance.now();
  const { model } = await loadPretrained(dir, { numPages, pageSize: 16 });
  console.log(`1 GPU in this process: loaded in ${(performance.now() - t0).toFixed(0)} ms, fused path ${fusedForwardSupported(model)}`);
  const one = results['1 GPU, whole model in this process'] = await measure(wholeModelSide(model, numPages), model.config.vocabSize);
  smi('1 GPU in this process');
  const two = results['2 GPUs, 2 stages'];
  let d = 0;
  for (let i = 0; i < one.logits.length; i++) d = Math.max(d, Math.abs(one.logits[i] - two.logits[i]));
  const same = JSON.stringify(one.tokens) === JSON.stringify(two.tokens);
  console.log(`exact: max |logits 2 stages - 1 GPU| = ${d.toExponential(2)}; greedy decode tokens ${same ? 'identical' : 'DIFFER'}`);
  console.log(`RESULT decode ${B}x${CTX}: 2 GPUs ${two.decodeTokS.toFixed(1)} tok/s vs 1 GPU ${one.decodeTokS.toFixed(1)} tok/s = ${(two.decodeTokS / one.decodeTokS).toFixed(2)}x ` +
    `(1 stage process: ${results['1 GPU, 1 stage process'].decodeTokS.toFixed(1)} tok/s)`);
  console.log(`RESULT prefill ${PB}x${PT}: 2 GPUs ${two.prefillMs.toFixed(1)} ms vs 1 GPU ${one.prefillMs.toFixed(1)} ms = ${(one.prefillMs / two.prefillMs).toFixed(2)}x ` +
    `(1 stage process: ${results['1 GPU, 1 stage process'].prefillMs.toFixed(1)} ms)`);
  model.dispose();
}

async function readVocab(dir: string): Promise<number> {
  return (JSON.parse(fs.readFileSync(`${dir}/config.json`, 'utf8')) as { vocab_size: number }).vocab_size;
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
