/** Packed training batches of the task: ragged rows, next-token targets, loss weights on the answer. */
import type { SeededRng } from '../lib/generation/rng.js';
import { type Example, type TaskOptions, keyOf, makeExample } from './task.js';

export interface PackedBatch {
  /** Input ids of every row, sequences one after another. */
  ids: Int32Array;
  /** `[batch + 1]` row offsets. */
  rowOffsets: Int32Array;
  /** Next token of each row. */
  targets: Int32Array;
  /** 1 where the target is part of the answer (after SEP), else 0. */
  weights: Float32Array;
}

/** Packs examples: each contributes prompt + answer minus its last token as inputs. */
export function packBatch(examples: Example[]): PackedBatch {
  const total = examples.reduce((s, e) => s + e.prompt.length + e.answer.length - 1, 0);
  const ids = new Int32Array(total), targets = new Int32Array(total), weights = new Float32Array(total);
  const rowOffsets = new Int32Array(examples.length + 1);
  let r = 0;
  examples.forEach((e, b) => {
    const seq = [...e.prompt, ...e.answer];
    for (let i = 0; i + 1 < seq.length; i++, r++) {
      ids[r] = seq[i];
      targets[r] = seq[i + 1];
      weights[r] = i + 1 >= e.prompt.length ? 1 : 0;
    }
    rowOffsets[b + 1] = r;
  });
  return { ids, rowOffsets, targets, weights };
}

/** A batch of fresh examples, none of them in `heldOut`. */
export function sampleBatch(rng: SeededRng, task: TaskOptions, size: number, heldOut: Set<string>): PackedBatch {
  return packBatch(sampleExamples(rng, task, size, heldOut));
}

/** `size` fresh examples, none of them in `heldOut` (a data-parallel rank packs its share). */
export function sampleExamples(rng: SeededRng, task: TaskOptions, size: number, heldOut: Set<string>): Example[] {
  const ex: Example[] = [];
  while (ex.length < size) {
    const e = makeExample(rng, task);
    if (!heldOut.has(keyOf(e))) ex.push(e);
  }
  return ex;
}

/** Rows the loss counts in `examples` (each answer's tokens, EOS included). */
export function lossRows(examples: readonly Example[]): number {
  return examples.reduce((s, e) => s + e.answer.length, 0);
}
