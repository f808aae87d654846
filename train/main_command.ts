/**
 * Command line of the main job (`npm start -- [options]`, `node dist/train/main.js [options]`):
 * every experiment knob as a commander option with its default in --help; unknown flags and bad
 * values fail naming the flag and the value.
 */
import { Command, Option } from 'commander';
import { KNOWN_BACKENDS } from '../lib/backends/select.js';
import { type CliIo, applyCliSettings, exitCodeOf, intAtLeast, positiveNumber, processIo } from '../bin/cli_options.js';
import { takeRunFlags } from './data_parallel.js';
import { DEFAULTS, type ExperimentOptions, type ExperimentResult, runExperiment } from './experiment.js';

/** Flags of train/data_parallel.ts (MPI data parallelism, accumulation, LoRA, saving), as its `takeRunFlags` reads them. */
export interface RunFlags { dataParallel: boolean; accumulate?: number; lora?: number; save?: string }

export interface MainJobArgs { options: ExperimentOptions; run: RunFlags }

/** The main job's command; `onArgs` receives the experiment options. */
export function mainJobCommand(io: CliIo, onArgs: (a: MainJobArgs) => void | Promise<void>): Command {
  const d = DEFAULTS;
  const cmd = new Command('node dist/train/main.js')
    .description('Fine-tune a small Llama-style model to reverse strings (ragged training path, fused kernels), answer held-out ' +
      'prompts through the paged KV cache, print exact match and tokens/s, and write the loss chart (PNG, SVG beside it).')
    .usage('[options]   (or: npm start -- [options])')
    .addHelpText('after', '\nExit status: 0 when held-out exact match reaches 95%, 1 below it, 2 on bad arguments or an error.')
    .option('--steps <n>', 'training steps', intAtLeast(1), d.steps)
    .addOption(new Option('--backend <name>', 'tfjs backend (auto: wasm when it loads, else cpu)').choices(['auto', ...KNOWN_BACKENDS]).default(d.backend))
    .option('--seed <n>', 'seed of the weights and the data', intAtLeast(0), d.seed)
    .option('--out <file>', 'loss chart PNG (the SVG goes beside it)', d.out)
    .option('--batch <n>', 'sequences per step', intAtLeast(1), d.batch)
    .option('--lr <x>', 'peak learning rate (warmup, cosine decay)', positiveNumber, d.lr)
    .option('--hidden <n>', 'hidden size', intAtLeast(1), d.hidden)
    .option('--layers <n>', 'decoder layers', intAtLeast(1), d.layers)
    .option('--heads <n>', 'attention heads', intAtLeast(1), d.heads)
    .option('--kv-heads <n>', 'key/value heads (GQA)', intAtLeast(1), d.kvHeads)
    .option('--theta <x>', 'RoPE base', positiveNumber, d.theta)
    .option('--max-len <n>', 'longest string of the task', intAtLeast(1), d.maxLen)
    .option('--eval <n>', 'held-out prompts answered after training', intAtLeast(1), d.heldOut)
    .option('--data-parallel', 'split each batch across MPI ranks (mpirun -np N node dist/train/main.js --data-parallel)', false)
    .option('--accumulate <k>', 'one process, k micro-batches per step (the twin of a k-rank data-parallel run)', intAtLeast(1))
    .option('--lora <r>', 'LoRA adapters of rank r on q and v, the rest frozen', intAtLeast(1))
    .option('--save <dir>', 'save the fine-tuned checkpoint (Hugging Face layout) and the losses here')
    .action((o: Record<string, unknown>) => {
      const options: ExperimentOptions = {
        steps: o.steps as number, backend: o.backend as string, seed: o.seed as number, out: o.out as string, batch: o.batch as number,
        lr: o.lr as number, hidden: o.hidden as number, layers: o.layers as number, heads: o.heads as number, kvHeads: o.kvHeads as number,
        theta: o.theta as number, maxLen: o.maxLen as number, heldOut: o.eval as number,
      };
      const run: RunFlags = { dataParallel: o.dataParallel as boolean, accumulate: o.accumulate as number | undefined, lora: o.lora as number | undefined, save: o.save as string | undefined };
      return onArgs({ options, run });
    });
  return applyCliSettings(cmd, 'train', io);
}

const usesRunFlags = (r: RunFlags) => r.dataParallel || r.accumulate !== undefined || r.lora !== undefined || r.save !== undefined;

/** Runs the experiment with the run flags (MPI data parallelism, accumulation, LoRA, saving: train/data_parallel.ts). */
async function runWithRunFlags(options: ExperimentOptions, flags: RunFlags): Promise<ExperimentResult> {
  const argv = [...(flags.dataParallel ? ['--data-parallel'] : []), ...(flags.accumulate !== undefined ? ['--accumulate', String(flags.accumulate)] : []),
    ...(flags.lora !== undefined ? ['--lora', String(flags.lora)] : []), ...(flags.save !== undefined ? ['--save', flags.save] : [])];
  const { run } = takeRunFlags(argv);
  return runExperiment(options, run);
}

/** Parses argv and runs the main job; returns the exit status (0: exact match >= 95%, 1 below, 2 bad arguments or error). */
export async function runMainJob(argv: string[], io: CliIo = processIo): Promise<number> {
  let code = 0;
  try {
    await mainJobCommand(io, async ({ options, run }) => {
      const r = usesRunFlags(run) ? await runWithRunFlags(options, run) : await runExperiment(options);
      code = r.exactMatch >= 0.95 ? 0 : 1;
    }).parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    return exitCodeOf(e, io);
  }
}
