/**
 * Batched generation for `generate --batch N` / `--prompts FILE`: every prompt decoded together
 * through the Generator's continuous batching (at most `maxBatchSize` at once), each sequence's
 * output printed when it finishes, then the aggregate rates (decode tokens/s counts every sequence).
 *
 * @example
 * const prompts = readPromptsFile('prompts.txt', tokenizer, 32000); // one prompt a line
 * const stats = await generateBatch(model, prompts, { maxNewTokens: 64, maxBatchSize: 8 }, (s) => process.stdout.write(s));
 */
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Generator } from '../models/generation/generator.js';
import type { SamplingParams } from '../lib/generation/sampler.js';
import type { DecoderForCausalLM } from '../models/decoder_lm.js';

interface TokenizerLike { encode(s: string): number[]; decode(ids: number[]): string }

/**
 * Prompts of a file, one a line (blank lines skipped): a line of comma-separated integers is
 * token ids, anything else is text for the tokenizer. Throws `[generate] ...` naming the line.
 */
export function readPromptsFile(file: string, tokenizer: TokenizerLike | null | undefined, vocab: number): number[][] {
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch (e) { throw new Error(`[generate] --prompts file '${file}' cannot be read: ${(e as Error).message}`); }
  const prompts: number[][] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    let ids: number[];
    if (/^\d+(\s*,\s*\d+)*$/.test(line)) ids = line.split(',').map((s) => Number(s.trim()));
    else if (tokenizer) ids = tokenizer.encode(line);
    else throw new Error(`[generate] --prompts line ${i + 1} is text, which needs tokenizer.json in the model folder; write token ids as 1,2,3`);
    const bad = ids.findIndex((t) => !Number.isInteger(t) || t < 0 || t >= vocab);
    if (bad >= 0) throw new Error(`[generate] --prompts line ${i + 1}: token ${bad} (${ids[bad]}) must be in [0, ${vocab})`);
    if (ids.length === 0) throw new Error(`[generate] --prompts line ${i + 1} encodes to no tokens`);
    prompts.push(ids);
  });
  if (prompts.length === 0) throw new Error(`[generate] --prompts file '${file}' holds no prompt`);
  return prompts;
}

export interface BatchOptions {
  maxNewTokens: number;
  maxBatchSize: number;
  sampling?: SamplingParams;
  seed?: number;
  stopTokens?: number[];
  tokenizer?: TokenizerLike | null;
}

export interface BatchStats {
  outputs: number[][];
  seconds: number;
  /** Seconds from the start to the first token of every sequence (the prefill). */
  firstTokenSeconds: number;
  /** New tokens of all sequences after their first, per second of the decode phase. */
  decodeTokensPerSecond: number;
}

/** Generates for every prompt together; writes `[i] <output>` lines as sequences finish. */
export async function generateBatch(model: DecoderForCausalLM, prompts: number[][], o: BatchOptions,
  write: (s: string) => void): Promise<BatchStats> {
  const page = model.kvParams.pageSize;
  const longest = Math.max(...prompts.map((p) => p.length));
  const concurrent = Math.min(o.maxBatchSize, prompts.length);
  const gen = new Generator(model, {
    numPages: concurrent * Math.ceil((longest + o.maxNewTokens) / page) + 1,
    maxBatchSize: o.maxBatchSize, maxBatchTokens: Math.max(256, concurrent * Math.min(longest, 2048)), prefillChunk: 2048,
  });
  let firstDone = 0;
  let started = 0;
  const start = performance.now();
  const handles = prompts.map((p, i) => gen.submit({
    promptIds: p, maxNewTokens: o.maxNewTokens, sampling: o.sampling, seed: (o.seed ?? 0) + i, stopTokens: o.stopTokens ?? [],
    onToken: (_t, s) => { if (s.tokens.length === 1 && ++started === prompts.length) firstDone = performance.now(); },
  }));
  handles.forEach((h, i) => h.done.then((toks) => write(`[${i}] ${o.tokenizer ? o.tokenizer.decode(toks) : toks.join(' ')}\n`), () => undefined));
  await gen.run();
  const outputs = await Promise.all(handles.map((h) => h.done));
  const end = performance.now();
  const later = outputs.reduce((n, t) => n + Math.max(0, t.length - 1), 0);
  return {
    outputs, seconds: (end - start) / 1000, firstTokenSeconds: (firstDone - start) / 1000,
    decodeTokensPerSecond: later > 0 && end > firstDone ? later / ((end - firstDone) / 1000) : 0,
  };
}
