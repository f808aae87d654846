/**
 * `tfjs-attention-rope generate --model DIR (--prompt TEXT | --prompt-ids 1,2,3) [--max-new-tokens N]
 *  [--backend NAME] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--no-stop] [--json]`
 * Loads a Hugging Face checkpoint folder, streams the new tokens to stdout as they come and
 * prints tokens/s at the end (to stderr); with --json, prints one JSON object instead.
 */
import { performance } from 'node:perf_hooks';
import { Command, Option } from 'commander';
import { KNOWN_BACKENDS, useBackend } from '../lib/backends/select.js';
import { Generator } from '../models/generation/generator.js';
import type { SamplingParams } from '../lib/generation/sampler.js';
import { loadPretrained, stopTokensOf } from '../models/load.js';
import { loadBatchModule, runGenerateMany } from './generate_many.js';
import { type CliIo, applyCliSettings, exitCodeOf, finiteNumber, intAtLeast, parseOrThrow, positiveNumber, processIo } from './cli_options.js';

export interface GenerateArgs {
  model: string;
  prompt?: string;
  promptIds?: number[];
  maxNewTokens: number;
  backend: string;
  sampling: SamplingParams;
  seed: number;
  stop: boolean;
  json: boolean;
  /** Many sequences at once (`--batch N`, `--prompts FILE`): bin/generate_many.ts. */
  batch?: number;
  prompts?: string;
}

/** What `generate --json` prints: one object, one line. */
export interface GenerateJson {
  model: string; backend: string; promptIds: number[]; tokens: number[]; text: string | null;
  finishReason: string | null; loadSeconds: number; seconds: number; firstTokenSeconds: number | null;
  tokensPerSecond: number; decodeTokensPerSecond: number | null;
}

function tokenIds(cmd: Command, v: string): number[] {
  return v.split(',').map((s, j) => {
    const n = Number(s.trim());
    if (s.trim() === '' || !Number.isInteger(n) || n < 0) cmd.error(`--prompt-ids entry ${j} ('${s}') must be a token id >= 0`);
    return n;
  });
}

/** The `generate` command; `onArgs` receives the checked arguments. */
export function generateCommand(io: CliIo, onArgs: (a: GenerateArgs) => void | Promise<void>): Command {
  const cmd = new Command('generate')
    .description('generate text with a Hugging Face checkpoint folder through the paged KV cache')
    .option('--model <dir>', 'checkpoint folder (config.json, *.safetensors, tokenizer.json for --prompt)')
    .option('--prompt <text>', 'prompt text (needs tokenizer.json)')
    .option('--prompt-ids <ids>', 'prompt token ids, comma-separated: 1,2,3')
    .option('--max-new-tokens <n>', 'tokens to generate', intAtLeast(1), 32)
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(KNOWN_BACKENDS).default('cpu'))
    .option('--temperature <t>', 'sampling temperature (0: greedy)', finiteNumber)
    .option('--top-k <k>', 'sample among the k likeliest tokens (0: all)', intAtLeast(0))
    .option('--top-p <p>', 'sample within the top-p probability mass, in (0, 1]', positiveNumber)
    .option('--seed <s>', 'sampling seed', intAtLeast(0), 0)
    .option('--no-stop', "keep going past the model's stop tokens")
    .option('--batch <n>', 'decode the prompt n times together; with --prompts: at most n sequences at once', intAtLeast(1))
    .option('--prompts <file>', 'one prompt a line (token ids 1,2,3 or text), decoded together')
    .option('--json', 'print one JSON object (tokens, text, timings) instead of streaming text', false)
    .action((o: Record<string, unknown>) => {
      if (o.model === undefined) cmd.error('--model DIR is required');
      if ([o.prompt, o.promptIds, o.prompts].filter((v) => v !== undefined).length !== 1) cmd.error('give exactly one of --prompt TEXT, --prompt-ids 1,2,3 or --prompts FILE');
      const sampling: SamplingParams = {};
      if (o.temperature !== undefined) sampling.temperature = o.temperature as number;
      if (o.topK !== undefined) sampling.topK = o.topK as number;
      if (o.topP !== undefined) sampling.topP = o.topP as number;
      return onArgs({
        model: o.model as string, prompt: o.prompt as string | undefined,
        promptIds: o.promptIds === undefined ? undefined : tokenIds(cmd, o.promptIds as string),
        maxNewTokens: o.maxNewTokens as number, backend: o.backend as string, sampling, seed: o.seed as number,
        stop: o.stop as boolean, json: o.json as boolean, batch: o.batch as number | undefined, prompts: o.prompts as string | undefined,
      });
    });
  return applyCliSettings(cmd, 'generate', io);
}

/** Parses argv (after `generate`); throws `[generate] ...` on bad input. */
export function parseGenerateArgs(argv: string[]): GenerateArgs {
  let parsed: GenerateArgs | undefined;
  parseOrThrow(generateCommand(processIo, (a) => { parsed = a; }), 'generate', argv);
  return parsed!;
}

/** Runs `generate` with parsed arguments; returns the exit status (0 ok, 2 failure). */
export async function runGenerateWith(args: GenerateArgs, io: CliIo = processIo): Promise<number> {
  const batchModule = args.batch !== undefined || args.prompts !== undefined ? await loadBatchModule() : null;
  await useBackend(args.backend);
  const t0 = performance.now();
  const pre = await loadPretrained(args.model);
  const { model, tokenizer } = pre;
  try {
    const loadS = (performance.now() - t0) / 1000;
    const stopTokens = args.stop ? stopTokensOf(pre) : [];
    let ids = args.promptIds;
    if (ids === undefined && args.prompt !== undefined) {
      if (!tokenizer) throw new Error(`[generate] --prompt needs tokenizer.json in '${args.model}'; use --prompt-ids instead`);
      ids = tokenizer.encode(args.prompt);
    }
    if (batchModule) return await runGenerateMany(batchModule, model, tokenizer, { ...args, single: ids, stopTokens }, loadS, io);
    if (ids === undefined) throw new Error('[generate] no prompt'); // the command checks that one is given
    const gen = new Generator(model, { numPages: Math.ceil((ids.length + args.maxNewTokens) / model.kvParams.pageSize) });
    const stream = args.json ? () => undefined : (s: string) => io.out(s);
    let printed = '';
    const tokens: number[] = [];
    let tFirst = 0;
    const start = performance.now();
    const handle = gen.submit({
      promptIds: ids, maxNewTokens: args.maxNewTokens, sampling: args.sampling, seed: args.seed,
      stopTokens,
      onToken: (t) => {
        if (tokens.length === 0) tFirst = performance.now();
        tokens.push(t);
        if (tokenizer) {
          // hold back a trailing partial UTF-8 character (U+FFFD) until its next byte arrives
          const text = tokenizer.decode(tokens).replace(/\uFFFD+$/, '');
          if (text.startsWith(printed)) {
            stream(text.slice(printed.length));
            printed = text;
          }
        } else stream(`${tokens.length > 1 ? ' ' : ''}${t}`);
      },
    });
    await gen.run();
    const end = performance.now();
    const total = (end - start) / 1000, decode = (end - tFirst) / 1000;
    const decodeRate = tokens.length > 1 ? (tokens.length - 1) / decode : null;
    if (args.json) {
      const result: GenerateJson = {
        model: args.model, backend: args.backend, promptIds: ids, tokens, text: tokenizer ? tokenizer.decode(tokens) : null,
        finishReason: handle.finishReason, loadSeconds: loadS, seconds: total,
        firstTokenSeconds: tokens.length > 0 ? (tFirst - start) / 1000 : null, tokensPerSecond: tokens.length / total, decodeTokensPerSecond: decodeRate,
      };
      io.out(`${JSON.stringify(result)}\n`);
      return 0;
    }
    io.out('\n');
    io.err(`${tokens.length} tokens in ${total.toFixed(3)} s: ${(tokens.length / total).toFixed(1)} tokens/s ` +
      `(prompt ${ids.length} tokens, first token after ${((tFirst - start) / 1000).toFixed(3)} s, decode ${decodeRate === null ? 'n/a' : decodeRate.toFixed(1)} tokens/s; ` +
      `load ${loadS.toFixed(2)} s, backend ${args.backend})\n`);
    return 0;
  } finally {
    model.dispose();
  }
}

/** Parses argv (after `generate`) and runs it; returns the exit status (0 ok, 2 bad arguments or failure). */
export async function runGenerate(argv: string[], io: CliIo = processIo): Promise<number> {
  let code = 0;
  try {
    await generateCommand(io, async (a) => { code = await runGenerateWith(a, io); }).parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    return exitCodeOf(e, io);
  }
}
