#!/usr/bin/env node
/**
 * tfjs-attention-rope command line.
 *   conformance DIR... [--backend NAME] [--unfused] [--page-size N] [--devices cpu,wasm]
 *   generate --model DIR (--prompt TEXT | --prompt-ids 1,2,3) [--max-new-tokens N] [--backend NAME]
 */
import '../lib/backends/node_install.js';  // the native CPU kernels and Dawn WebGPU (Node)
import { runConformance } from './conformance/run.js';

const USAGE = `usage: tfjs-attention-rope <command> [options]
  conformance DIR... [--backend cpu|wasm|webgpu|webgl|tensorflow] [--unfused] [--page-size N] [--devices cpu,cpu]
  generate --model DIR (--prompt TEXT | --prompt-ids 1,2,3) [--max-new-tokens N] [--backend NAME]`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'conformance': return runConformance(rest);
    case 'generate': {
      const generateModule = './generate.js'; // written beside this file
      const m = await import(generateModule) as { runGenerate(a: string[]): Promise<number> };
      return m.runGenerate(rest);
    }
    case undefined: case '-h': case '--help':
      console.log(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      console.error(`unknown command '${cmd}'\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: Error) => {
  console.error(e.message);
  process.exitCode = 2;
});
