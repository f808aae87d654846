/**
 * `tfjs-attention-rope conformance DIR... [--backend NAME] [--unfused] [--page-size N] [--devices a,b] [--json]`
 * Finds every fixture folder under each DIR (attention fixtures: config.json + tensors.safetensors;
 * model fixtures: config.json + expected.json), runs each, prints one line per case and
 * `N passed, M failed` (with --json: one JSON object). Returns the exit status (1 if any failed, or if
 * no fixture was found: an empty run proves nothing).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Command, Option } from 'commander';
import { KNOWN_BACKENDS, useBackend } from '../../lib/backends/select.js';
import { type CliIo, applyCliSettings, exitCodeOf, intAtLeast, parseOrThrow, processIo } from '../cli_options.js';
import { runAttentionFixture, type FixtureResult } from './attention_fixture.js';
import { isAttentionFixture, loadAttentionFixture } from './attention_fixture_files.js';

export interface ConformanceArgs {
  dirs: string[];
  backend: string;
  unfused: boolean;
  pageSize: number;
  devices: string[] | null;
  json: boolean;
}

/** What `conformance --json` prints. `error` is null where a case threw. */
export interface ConformanceJson {
  backend: string;
  path: 'fused' | 'composite' | 'sharded';
  devices: string[] | null;
  fixtures: { name: string; dir: string; passed: boolean; error: number | null; detail: string }[];
  passed: number;
  failed: number;
}

/** The `conformance` command; `onArgs` receives the checked arguments. */
export function conformanceCommand(io: CliIo, onArgs: (a: ConformanceArgs) => void | Promise<void>): Command {
  const cmd = new Command('conformance')
    .description('run the golden fixtures (attention and model) under each folder and compare with their expected outputs')
    .argument('<dirs...>', 'fixture folders (searched recursively)')
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(KNOWN_BACKENDS).default('cpu'))
    .option('--unfused', 'run the composite reference path instead of the fused kernels', false)
    .option('--page-size <n>', 'KV cache page size for attention fixtures', intAtLeast(1), 16)
    .option('--devices <list>', 'shard attention fixtures over these devices, comma-separated (e.g. cpu,wasm)')
    .option('--json', 'print one JSON object (every case, totals) instead of lines', false)
    .action((dirs: string[], o: Record<string, unknown>) => {
      let devices: string[] | null = null;
      if (o.devices !== undefined) {
        devices = (o.devices as string).split(',').map((s) => s.trim()).filter(Boolean);
        if (devices.length === 0) cmd.error(`--devices ('${o.devices}') must name at least one device`);
      }
      return onArgs({ dirs, backend: o.backend as string, unfused: o.unfused as boolean, pageSize: o.pageSize as number, devices, json: o.json as boolean });
    });
  return applyCliSettings(cmd, 'conformance', io);
}

/** Parses argv (after `conformance`); throws `[conformance] ...` on bad input. */
export function parseConformanceArgs(argv: string[]): ConformanceArgs {
  let parsed: ConformanceArgs | undefined;
  parseOrThrow(conformanceCommand(processIo, (a) => { parsed = a; }), 'conformance', argv);
  return parsed!;
}

const isModelFixture = (d: string) => fs.existsSync(path.join(d, 'expected.json')) && fs.existsSync(path.join(d, 'config.json'));

/** Fixture folders under dir (dir itself if it is one), sorted. */
export function findFixtures(dir: string): string[] {
  if (!fs.existsSync(dir)) throw new Error(`[conformance] no such folder: ${dir}`);
  if (isAttentionFixture(dir) || isModelFixture(dir)) return [dir];
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((x, y) => x.name.localeCompare(y.name))) {
    if (e.isDirectory()) out.push(...findFixtures(path.join(dir, e.name)));
  }
  return out;
}

async function runOne(dir: string, a: ConformanceArgs): Promise<FixtureResult> {
  if (isAttentionFixture(dir)) {
    if (a.devices) {
      const shardedModule = './sharded_fixture.js';
      const m = await import(shardedModule) as { runShardedFixture(d: string, devices: string[]): Promise<FixtureResult> };
      return m.runShardedFixture(dir, a.devices);
    }
    return await runAttentionFixture(loadAttentionFixture(dir), { unfused: a.unfused, pageSize: a.pageSize });
  }
  const m = await import('../conformance_models.js');
  if (a.unfused) tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', true);
  return m.runModelFixture(dir);
}

/** Runs the fixtures; returns the exit status (0 all passed, 1 any failed or none found). */
export async function runConformanceWith(a: ConformanceArgs, io: CliIo = processIo): Promise<number> {
  await useBackend(a.backend);
  const dirs = a.dirs.flatMap(findFixtures);
  if (dirs.length === 0) {
    io.err(`[conformance] no fixtures found under ${a.dirs.join(', ')} (a fixture folder holds config.json with tensors.safetensors or expected.json)\n`);
    return 1;
  }
  const report: ConformanceJson = {
    backend: tf.getBackend(), path: a.devices ? 'sharded' : a.unfused ? 'composite' : 'fused', devices: a.devices, fixtures: [], passed: 0, failed: 0,
  };
  const line = (s: string) => { if (!a.json) io.out(`${s}\n`); };
  const path_ = a.devices ? `sharded over ${a.devices.join('+')}` : a.unfused ? 'composite path' : 'fused where available';
  line(`conformance on backend '${report.backend}', ${path_}, ${dirs.length} fixtures`);
  for (const dir of dirs) {
    let r: FixtureResult;
    try {
      r = await runOne(dir, a);
    } catch (e) {
      r = { name: path.basename(dir), error: Infinity, passed: false, detail: `threw: ${(e as Error).message}` };
    }
    if (r.passed) report.passed++; else report.failed++;
    report.fixtures.push({ name: r.name, dir, passed: r.passed, error: Number.isFinite(r.error) ? r.error : null, detail: r.detail });
    line(`${r.passed ? 'PASS' : 'FAIL'}  ${r.name.padEnd(28)} error ${r.error.toExponential(2)}  ${r.detail}`);
  }
  line(`${report.passed} passed, ${report.failed} failed`);
  if (a.json) io.out(`${JSON.stringify(report)}\n`);
  return report.failed > 0 ? 1 : 0;
}

/** Parses argv (after `conformance`) and runs it; returns the exit status (0 ok, 1 a case failed, 2 bad arguments). */
export async function runConformance(argv: string[], io: CliIo = processIo): Promise<number> {
  let code = 0;
  try {
    await conformanceCommand(io, async (a) => { code = await runConformanceWith(a, io); }).parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    return exitCodeOf(e, io);
  }
}
