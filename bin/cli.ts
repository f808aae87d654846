#!/usr/bin/env node
/**
 * tfjs-attention-rope command line (see program.ts; `--help` lists the commands).
 *   conformance DIR... [--backend NAME] [--unfused] [--page-size N] [--devices cpu,wasm] [--json]
 *   generate --model DIR (--prompt TEXT | --prompt-ids 1,2,3) [--max-new-tokens N] [--backend NAME] [--json]
 */
import '../lib/backends/node_install.js';  // the native CPU kernels and Dawn WebGPU (Node)
import { runCli } from './program.js';

runCli(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: Error) => {
  console.error(e.message);
  process.exitCode = 2;
});
