/**
 * The `tfjs-attention-rope` command line as a commander program: `conformance` and `generate`,
 * each with --help, errors naming the unknown flag, and --json output for scripts.
 * The main job (fine-tune, evaluate, chart) has its own entry: `npm start -- --help`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { silenceNodeBackendBanner } from '../lib/backends/quiet_banner.js';
import { packageRoot } from '../lib/util/package_root.js';
import { type CliIo, applyCliSettings, exitCodeOf, processIo } from './cli_options.js';
import { conformanceCommand, runConformanceWith } from './conformance/run.js';
import { generateCommand, runGenerateWith } from './generate.js';

function packageVersion(): string {
  return (JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
}

/**
 * Runs the command line on `argv` (without node and the script); returns the exit status:
 * 0 ok (or --help), 1 a conformance case failed, 2 bad arguments or a failure.
 *
 * @example
 * const code = await runCli(['generate', '--model', 'models/tiny', '--prompt-ids', '1,2,3', '--json']);
 */
export async function runCli(argv: string[], io: CliIo = processIo): Promise<number> {
  silenceNodeBackendBanner();
  let code = 0;
  const program = applyCliSettings(new Command('tfjs-attention-rope'), 'tfjs-attention-rope', io)
    .description('Attention with RoPE, GQA and a paged KV cache for TensorFlow.js: golden-fixture conformance and text generation.')
    .version(packageVersion())
    .addCommand(conformanceCommand(io, async (a) => { code = await runConformanceWith(a, io); }))
    .addCommand(generateCommand(io, async (a) => { code = await runGenerateWith(a, io); }))
    .addHelpText('after', '\nEach command has its own --help. The main job (fine-tune, evaluate, loss chart): npm start -- --help');
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    return exitCodeOf(e, io);
  }
}
