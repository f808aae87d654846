/**
 * `tfjs-attention-rope generate --model DIR (--prompt TEXT | --prompt-ids 1,2,3 | --prompts FILE) [--batch N]
 *  [--max-new-tokens N] [--backend NAME] [--temperature T] [--top-k K] [--top-p P] [--seed S]`
 * Loads a Hugging Face checkpoint folder, streams the new tokens to stdout as they come and
 * prints tokens/s at the end (to stderr). With `--batch N` (the prompt N times) or `--prompts FILE`
 * (one prompt a line) the sequences are decoded together (bin/generate_batch.ts).
 */
import { performance } from 'node:perf_hooks';
import { useBackend } from '../lib/backends/select.js';
import { Generator } from '../lib/generation/generator.js';
import type { SamplingParams } from '../lib/generation/sampler.js';
import { loadPretrained, stopTokensOf } from '../models/load.js';
import { generateBatch, readPromptsFile } from './generate_batch.js';

export const GENERATE_USAGE = `usage: tfjs-attention-rope generate --model DIR (--prompt TEXT | --prompt-ids 1,2,3 | --prompts FILE)
  [--batch N (the prompt N times; with --prompts: most sequences at once)] [--max-new-tokens N (32)] [--backend cpu|wasm|webgpu|... (cpu)] [--temperature T (0: greedy)]
  [--top-k K] [--top-p P] [--seed S] [--no-stop]`;

interface GenerateArgs {
  model: string;
  prompt?: string;
  promptIds?: number[];
  maxNewTokens: number;
  backend: string;
  sampling: SamplingParams;
  seed: number;
  stop: boolean;
  batch?: number;
  promptsFile?: string;
}

/** Parses argv; throws `[generate] ...` on bad input. */
export function parseGenerateArgs(argv: string[]): GenerateArgs {
  const out: Partial<GenerateArgs> & { sampling: SamplingParams } = { maxNewTokens: 32, backend: 'cpu', sampling: {}, seed: 0, stop: true };
  const num = (flag: string, v: string | undefined, int: boolean): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || (int && !Number.isInteger(n))) throw new Error(`[generate] ${flag} needs ${int ? 'an integer' : 'a number'}, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`[generate] ${a} needs a value`);
      return v;
    };
    switch (a) {
      case '--model': out.model = next(); break;
      case '--prompt': out.prompt = next(); break;
      case '--prompt-ids': {
        const v = next();
        out.promptIds = v.split(',').map((s, j) => {
          const n = Number(s.trim());
          if (s.trim() === '' || !Number.isInteger(n) || n < 0) throw new Error(`[generate] --prompt-ids entry ${j} ('${s}') must be a token id >= 0`);
          return n;
        });
        break;
      }
      case '--max-new-tokens': out.maxNewTokens = num(a, next(), true); break;
      case '--backend': out.backend = next(); break;
      case '--temperature': out.sampling.temperature = num(a, next(), false); break;
      case '--top-k': out.sampling.topK = num(a, next(), true); break;
      case '--top-p': out.sampling.topP = num(a, next(), false); break;
      case '--seed': out.seed = num(a, next(), true); break;
      case '--no-stop': out.stop = false; break;
      case '--batch': out.batch = num(a, next(), true); if (out.batch < 1) throw new Error(`[generate] --batch (${out.batch}) must be >= 1`); break;
      case '--prompts': out.promptsFile = next(); break;
      default: throw new Error(`[generate] unknown option '${a}'`);
    }
  }
  if (!out.model) throw new Error('[generate] --model DIR is required');
  const given = [out.prompt, out.promptIds, out.promptsFile].filter((v) => v !== undefined).length;
  if (given !== 1) throw new Error('[generate] give exactly one of --prompt TEXT, --prompt-ids 1,2,3 or --prompts FILE');
  return out as GenerateArgs;
}

/** Runs the subcommand; returns the exit code (0 ok, 2 bad arguments or failure). */
export async function runGenerate(argv: string[], write: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  let args: GenerateArgs;
  try {
    args = parseGenerateArgs(argv);
  } catch (e) {
    console.error(`${(e as Error).message}\n${GENERATE_USAGE}`);
    return 2;
  }
  await useBackend(args.backend);
  const t0 = performance.now();
  const pre = await loadPretrained(args.model);
  const { model, tokenizer } = pre;
  try {
    const loadS = (performance.now() - t0) / 1000;
    if (args.batch !== undefined || args.promptsFile !== undefined) {
      const prompts = args.promptsFile !== undefined ? readPromptsFile(args.promptsFile, tokenizer, model.config.vocabSize)
        : Array.from({ length: args.batch! }, () => args.promptIds ?? tokenizer?.encode(args.prompt!) ?? []);
      if (prompts[0].length === 0) throw new Error(`[generate] --prompt needs tokenizer.json in '${args.model}'; use --prompt-ids instead`);
      const r = await generateBatch(model, prompts, {
        maxNewTokens: args.maxNewTokens, maxBatchSize: args.batch ?? prompts.length, sampling: args.sampling, seed: args.seed,
        stopTokens: args.stop ? stopTokensOf(pre) : [], tokenizer,
      }, write);
      const total = r.outputs.reduce((n, t) => n + t.length, 0);
      console.error(`${prompts.length} sequences, ${total} tokens in ${r.seconds.toFixed(3)} s: ${(total / r.seconds).toFixed(1)} tokens/s ` +
        `(first tokens of all after ${r.firstTokenSeconds.toFixed(3)} s, decode ${r.decodeTokensPerSecond.toFixed(1)} tokens/s over all sequences; ` +
        `load ${loadS.toFixed(2)} s, backend ${args.backend})`);
      return 0;
    }
    let ids = args.promptIds;
    if (ids === undefined) {
      if (!tokenizer) throw new Error(`[generate] --prompt needs tokenizer.json in '${args.model}'; use --prompt-ids instead`);
      ids = tokenizer.encode(args.prompt!);
    }
    const gen = new Generator(model, { numPages: Math.ceil((ids.length + args.maxNewTokens) / model.kvParams.pageSize) });
    let printed = '';
    const tokens: number[] = [];
    let tFirst = 0;
    const start = performance.now();
    gen.submit({
      promptIds: ids, maxNewTokens: args.maxNewTokens, sampling: args.sampling, seed: args.seed,
      stopTokens: args.stop ? stopTokensOf(pre) : [],
      onToken: (t) => {
        if (tokens.length === 0) tFirst = performance.now();
        tokens.push(t);
        if (tokenizer) {
          // hold back a trailing partial UTF-8 character (U+FFFD) until its next byte arrives
          const text = tokenizer.decode(tokens).replace(/\uFFFD+$/, '');
          if (text.startsWith(printed)) {
            write(text.slice(printed.length));
            printed = text;
          }
        } else write(`${tokens.length > 1 ? ' ' : ''}${t}`);
      },
    });
    await gen.run();
    const end = performance.now();
    write('\n');
    const total = (end - start) / 1000, decode = (end - tFirst) / 1000;
    const decodeRate = tokens.length > 1 ? ((tokens.length - 1) / decode).toFixed(1) : 'n/a';
    console.error(`${tokens.length} tokens in ${total.toFixed(3)} s: ${(tokens.length / total).toFixed(1)} tokens/s ` +
      `(prompt ${ids.length} tokens, first token after ${((tFirst - start) / 1000).toFixed(3)} s, decode ${decodeRate} tokens/s; ` +
      `load ${loadS.toFixed(2)} s, backend ${args.backend})`);
    return 0;
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  } finally {
    model.dispose();
  }
}
