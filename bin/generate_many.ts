/**
 * `generate --batch N` (the prompt N times) and `generate --prompts FILE [--batch N]` (one prompt
 * a line, at most N at once): the command-line side of bin/generate_batch.ts (`generateBatch`,
 * `readPromptsFile`), which decodes the sequences together through continuous batching. Plain
 * output: `[i] text` per sequence as it finishes and the rates on stderr; --json: one object.
 */
import type { SamplingParams } from '../lib/generation/sampler.js';
import type { DecoderForCausalLM } from '../models/decoder_lm.js';
import type { CliIo } from './cli_options.js';

interface TokenizerLike { encode(s: string): number[]; decode(ids: number[]): string }

/** What bin/generate_batch.ts provides. */
export interface BatchModule {
  readPromptsFile(file: string, tokenizer: TokenizerLike | null | undefined, vocab: number): number[][];
  generateBatch(model: DecoderForCausalLM, prompts: number[][], o: {
    maxNewTokens: number; maxBatchSize: number; sampling?: SamplingParams; seed?: number; stopTokens?: number[]; tokenizer?: TokenizerLike | null;
  }, write: (s: string) => void): Promise<{ outputs: number[][]; seconds: number; firstTokenSeconds: number; decodeTokensPerSecond: number }>;
}

/** What `generate --batch/--prompts --json` prints. */
export interface GenerateManyJson {
  model: string; backend: string; sequences: { promptIds: number[]; tokens: number[]; text: string | null }[];
  loadSeconds: number; seconds: number; firstTokenSeconds: number; tokensPerSecond: number; decodeTokensPerSecond: number;
}

/** bin/generate_batch.ts where this build has it; else an error saying the flags are not supported yet. */
export async function loadBatchModule(): Promise<BatchModule> {
  const batchModule = './generate_batch.js';
  try {
    return await import(batchModule) as BatchModule;
  } catch (e) {
    if (!/(Cannot find module|Could not locate module)[^\n]*generate_batch/.test(String(e))) throw e;
    throw new Error('[generate] --batch/--prompts (continuous batching of many prompts) are not supported yet in this build');
  }
}

export interface ManyArgs {
  model: string; backend: string; prompts?: string; batch?: number; single?: number[]; maxNewTokens: number;
  sampling: SamplingParams; seed: number; stopTokens: number[]; json: boolean;
}

/** Runs the batch; `a.single` is the one prompt repeated `a.batch` times when no --prompts file is given. */
export async function runGenerateMany(m: BatchModule, model: DecoderForCausalLM, tokenizer: TokenizerLike | null | undefined,
  a: ManyArgs, loadSeconds: number, io: CliIo): Promise<number> {
  const prompts = a.prompts !== undefined ? m.readPromptsFile(a.prompts, tokenizer, model.config.vocabSize)
    : Array.from({ length: a.batch! }, () => a.single!);
  const r = await m.generateBatch(model, prompts, {
    maxNewTokens: a.maxNewTokens, maxBatchSize: a.batch ?? prompts.length, sampling: a.sampling, seed: a.seed, stopTokens: a.stopTokens, tokenizer,
  }, a.json ? () => undefined : (s) => io.out(s));
  const total = r.outputs.reduce((n, t) => n + t.length, 0);
  if (a.json) {
    const out: GenerateManyJson = {
      model: a.model, backend: a.backend,
      sequences: prompts.map((p, i) => ({ promptIds: p, tokens: r.outputs[i], text: tokenizer ? tokenizer.decode(r.outputs[i]) : null })),
      loadSeconds, seconds: r.seconds, firstTokenSeconds: r.firstTokenSeconds, tokensPerSecond: total / r.seconds, decodeTokensPerSecond: r.decodeTokensPerSecond,
    };
    io.out(`${JSON.stringify(out)}\n`);
    return 0;
  }
  io.err(`${prompts.length} sequences, ${total} tokens in ${r.seconds.toFixed(3)} s: ${(total / r.seconds).toFixed(1)} tokens/s ` +
    `(first tokens of all after ${r.firstTokenSeconds.toFixed(3)} s, decode ${r.decodeTokensPerSecond.toFixed(1)} tokens/s over all sequences; ` +
    `load ${loadSeconds.toFixed(2)} s, backend ${a.backend})\n`);
  return 0;
}
