/**
 * The main job over MPI: `mpirun -np N node dist/train/main.js --data-parallel`. Every rank builds
 * the same model and draws the same global batches (same seed); each trains on its contiguous
 * share of every batch, its loss scaled by its share of the global batch's loss rows, so the
 * gradients summed over ranks (one fused allreduce per step, the loss and accuracy riding along)
 * are the gradients of the global batch. Every rank applies the same update; the weights are
 * checked identical at the end. Rank 0 alone prints, evaluates and saves (`--save DIR`).
 *
 * Flags handled here (the rest go to main.ts's parser): `--data-parallel`, `--save DIR` (the
 * fine-tuned checkpoint in Hugging Face layout plus `losses.json`; also without MPI),
 * `--accumulate K` (one process, K micro-batches per step: the data-parallel run's twin),
 * `--lora R` (LoRA adapters on q and v, the rest frozen: only the adapters' gradients cross the wire).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { DataParallel, LAYOUT_FLOATS } from '../lib/training/data_parallel.js';
import { saveHfCheckpoint } from '../models/save_checkpoint.js';
import { applyLoRA } from '../lib/training/lora.js';
import type { DecoderForCausalLM } from '../models/decoder_lm.js';
import { lossRows } from './data.js';
import type { Example } from './task.js';

/** How this process takes part in training: alone (dp null) or as one MPI rank. */
export interface TrainRun {
  dp: DataParallel | null;
  /** Where rank 0 saves the fine-tuned checkpoint and the loss curve's numbers, or null. */
  save: string | null;
  /**
   * Alone: gradient accumulation over this many micro-batches per step (1: none), split as that
   * many data-parallel ranks would split the batch, so a run with `--accumulate N` is the
   * single-process twin of `mpirun -np N ... --data-parallel` (same sums in the same order).
   */
  accumulate: number;
  /** LoRA rank on every attention block's q and v (0: full fine-tune); the base weights frozen. */
  lora: number;
}

export const SINGLE_RUN: TrainRun = { dp: null, save: null, accumulate: 1, lora: 0 };

/** Takes `--data-parallel`, `--accumulate K`, `--lora R` and `--save DIR` out of argv; joins the MPI world for the first. */
export function takeRunFlags(argv: string[]): { argv: string[]; run: TrainRun } {
  const rest: string[] = [];
  let dataParallel = false, save: string | null = null, accumulate = 1, lora = 0;
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=');
    if (flag === '--data-parallel') dataParallel = true;
    else if (flag === '--accumulate' || flag === '--lora') {
      const v = inline ?? argv[++i];
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new Error(`[train] ${flag} must be an integer >= 1, got '${v}'`);
      if (flag === '--lora') lora = n;
      else accumulate = n;
    }
    else if (flag === '--save') {
      save = inline ?? argv[++i] ?? null;
      if (!save || save.startsWith('--')) throw new Error(`[train] flag --save needs a directory, got '${save ?? ''}'`);
    } else rest.push(argv[i]);
  }
  if (dataParallel && accumulate > 1) throw new Error(`[train] --accumulate (${accumulate}) is for a single process; with --data-parallel the ranks split the batch`);
  const dp = dataParallel ? DataParallel.init() : null;
  if (dp && !dp.isRoot) console.log = () => {}; // the other ranks' lines would repeat rank 0's
  return { argv: rest, run: { dp, save, accumulate, lora } };
}

/** A part of a global batch and the factor its mean loss is scaled by (its share of the loss rows). */
export interface Share { examples: Example[]; lossScale: number; rows: number }

/**
 * This process's parts of a global batch: the whole batch alone; this rank's contiguous share
 * (data parallel); or `accumulate` contiguous micro-batches, split as that many ranks would.
 */
export function stepShares(run: TrainRun, examples: Example[]): Share[] {
  const all = lossRows(examples);
  const share = (ex: Example[]): Share => { const rows = lossRows(ex); return { examples: ex, lossScale: rows / all, rows }; };
  if (run.dp) return [share(run.dp.slice(examples))];
  if (run.accumulate <= 1) return [{ examples, lossScale: 1, rows: all }];
  const k = run.accumulate, n = examples.length, base = Math.floor(n / k), extra = n % k;
  if (n < k) throw new Error(`[train] --batch (${n}) must be >= --accumulate (${k})`);
  const out: Share[] = [];
  for (let i = 0, start = 0; i < k; i++) {
    const end = start + base + (i < extra ? 1 : 0);
    out.push(share(examples.slice(start, end)));
    start = end;
  }
  return out;
}

/** Sums two gradient maps (same keys), disposing both. */
export function addGradients(a: tf.NamedTensorMap, b: tf.NamedTensorMap): tf.NamedTensorMap {
  const out: tf.NamedTensorMap = {};
  for (const k of Object.keys(a)) out[k] = tf.add(a[k], b[k]);
  tf.dispose([a, b] as unknown as tf.Tensor[]);
  return out;
}

/**
 * The step's gradients, loss and token accuracy (`hits` of `rows`) of the global batch: summed
 * over ranks in one allreduce (data parallel), else as they are. Disposes `grads` when it
 * returns new ones.
 */
export function reduceStep(run: TrainRun, grads: tf.NamedTensorMap, loss: number, hits: number, rows: number): { grads: tf.NamedTensorMap; loss: number; acc: number } {
  if (!run.dp) return { grads, loss, acc: rows > 0 ? hits / rows : 0 };
  const r = run.dp.allreduceGradients(grads, { extras: [loss, hits, rows] });
  const [sumLoss, sumHits, total] = r.extras;
  return { grads: r.grads, loss: sumLoss, acc: total > 0 ? sumHits / total : 0 };
}

/** `--lora R`: adapters on every block's q and v projections, every other weight frozen. */
export function applyRunLoRA(run: TrainRun, model: DecoderForCausalLM): void {
  if (run.lora < 1) return;
  for (const b of model.blocks) applyLoRA(b.attn, { rank: run.lora, alpha: 2 * run.lora, targets: ['q', 'v'] });
  for (const w of model.trainableWeights) if (!/lora_[AB]/.test(w.name)) w.trainable = false;
}

/** Rank 0's weights to every rank before training (they agree already when seeded alike). */
export function startTraining(run: TrainRun, vars: tf.Variable[]): void {
  if (!run.dp) return;
  run.dp.broadcastVariables(vars);
  console.log(`data parallel: ${run.dp.size} MPI ranks, each global batch split by examples; one allreduce of ${vars.reduce((s, v) => s + v.size, 0) + 3 + LAYOUT_FLOATS} floats per step (${run.dp.comm.version.split(',')[0]})`);
}

/** Checks the ranks ended with identical weights. */
export function endTraining(run: TrainRun, vars: tf.Variable[]): void {
  if (!run.dp) return;
  run.dp.checkIdentical(vars);
  console.log(`data parallel: weights identical on all ${run.dp.size} ranks (checked); ${run.dp.comm.allreduceCalls} allreduce calls`);
}

/** Whether this process prints progress, evaluates and saves (rank 0, or the only process). */
export function isLead(run: TrainRun): boolean { return !run.dp || run.dp.isRoot; }

/** Rank 0's evaluation result to every rank (the others skip evaluating). */
export function shareResult(run: TrainRun, exactMatch: number): number {
  if (!run.dp) return exactMatch;
  const v = new Float32Array([exactMatch]);
  run.dp.comm.broadcast(v, 0, 0); // no timeout: rank 0 evaluates meanwhile
  return v[0];
}

/** Rank 0 (or the only process) saves the checkpoint and the per-step losses under `run.save`. */
export function saveRun(run: TrainRun, model: DecoderForCausalLM, hfConfig: Record<string, unknown>, losses: number[], accs: number[]): void {
  if (!run.save || !isLead(run)) return;
  saveHfCheckpoint(model, run.save, hfConfig);
  fs.writeFileSync(path.join(run.save, 'losses.json'), `${JSON.stringify({ ranks: run.dp?.size ?? 1, losses, accs })}\n`);
  console.log(`saved: ${run.save} (config.json, model.safetensors, losses.json)`);
}
