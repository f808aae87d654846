/**
 * Command line of the main job (`npm start -- [options]`, `node dist/train/main.js [options]`):
 * every experiment knob as a commander option with its default in --help; unknown flags and bad
 * values fail naming the flag and the value.
 */
import { Command, Option } from 'commander';
import { KNOWN_BACKENDS } from '../lib/backends/select.js';
import { type CliIo, applyCliSettings, exitCodeOf, intAtLeast, positiveNumber, processIo } from '../bin/cli_options.js';
import { DEFAULTS, type ExperimentOptions, type ExperimentResult, runExperiment } from './experiment.js';

export interface MainJobArgs { options: ExperimentOptions; dataParallel: boolean }

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
    .action((o: Record<string, unknown>) => {
      const options: ExperimentOptions = {
        steps: o.steps as number, backend: o.backend as string, seed: o.seed as number, out: o.out as string, batch: o.batch as number,
        lr: o.lr as number, hidden: o.hidden as number, layers: o.layers as number, heads: o.heads as number, kvHeads: o.kvHeads as number,
        theta: o.theta as number, maxLen: o.maxLen as number, heldOut: o.eval as number,
      };
      return onArgs({ options, dataParallel: o.dataParallel as boolean });
    });
  return applyCliSettings(cmd, 'train', io);
}

/** Runs `--data-parallel` through train/data_parallel.ts where this build has it. */
async function runDataParallelIfBuilt(o: ExperimentOptions): Promise<ExperimentResult> {
  const dataParallelModule = './data_parallel.js';
  let m: { runDataParallel?: (o: ExperimentOptions) => Promise<ExperimentResult> };
  try {
    m = await import(dataParallelModule) as typeof m;
  } catch (e) {
    if (!/Cannot find module|ERR_MODULE_NOT_FOUND/.test(String(e))) throw e;
    throw new Error('[train] --data-parallel needs train/data_parallel.ts (MPI data-parallel fine-tuning), which this build does not have');
  }
  if (typeof m.runDataParallel !== 'function') throw new Error('[train] train/data_parallel.ts has no runDataParallel export');
  return m.runDataParallel(o);
}

/** Parses argv and runs the main job; returns the exit status (0: exact match >= 95%, 1 below, 2 bad arguments or error). */
export async function runMainJob(argv: string[], io: CliIo = processIo): Promise<number> {
  let code = 0;
  try {
    await mainJobCommand(io, async ({ options, dataParallel }) => {
      const r = dataParallel ? await runDataParallelIfBuilt(options) : await runExperiment(options);
      code = r.exactMatch >= 0.95 ? 0 : 1;
    }).parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    return exitCodeOf(e, io);
  }
}
