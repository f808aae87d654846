/**
 * `tfjs-attention-rope conformance DIR... [--backend NAME] [--unfused] [--page-size N] [--devices a,b]`
 * Finds every fixture folder under each DIR (attention fixtures: config.json + tensors.safetensors;
 * model fixtures: config.json + expected.json), runs each, prints one line per case and
 * `N passed, M failed`. Returns the exit status (1 if any failed, or if no fixture was found: an empty run proves nothing).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../lib/backends/select.js';
import { runAttentionFixture, type FixtureResult } from './attention_fixture.js';
import { isAttentionFixture, loadAttentionFixture } from './attention_fixture_files.js';

export interface ConformanceArgs {
  dirs: string[];
  backend: string;
  unfused: boolean;
  pageSize: number;
  devices: string[] | null;
}

export function parseConformanceArgs(argv: string[]): ConformanceArgs {
  const a: ConformanceArgs = { dirs: [], backend: 'cpu', unfused: false, pageSize: 16, devices: null };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`[conformance] ${x} needs a value`);
      return v;
    };
    if (x === '--backend') a.backend = value();
    else if (x === '--unfused') a.unfused = true;
    else if (x === '--page-size') a.pageSize = Number(value());
    else if (x === '--devices') a.devices = value().split(',').filter(Boolean);
    else if (x.startsWith('--')) throw new Error(`[conformance] unknown option ${x}`);
    else a.dirs.push(x);
  }
  if (a.dirs.length === 0) throw new Error('[conformance] give at least one fixture folder');
  if (!Number.isInteger(a.pageSize) || a.pageSize < 1) throw new Error(`[conformance] --page-size must be an integer >= 1, got ${a.pageSize}`);
  return a;
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

export async function runConformance(argv: string[]): Promise<number> {
  const a = parseConformanceArgs(argv);
  await useBackend(a.backend);
  const dirs = a.dirs.flatMap(findFixtures);
  if (dirs.length === 0) {
    console.error(`[conformance] no fixtures found under ${a.dirs.join(', ')} (a fixture folder holds config.json with tensors.safetensors or expected.json)`);
    return 1;
  }
  let passed = 0, failed = 0;
  const path_ = a.devices ? `sharded over ${a.devices.join('+')}` : a.unfused ? 'composite path' : 'fused where available';
  console.log(`conformance on backend '${tf.getBackend()}', ${path_}, ${dirs.length} fixtures`);
  for (const dir of dirs) {
    let r: FixtureResult;
    try {
      r = await runOne(dir, a);
    } catch (e) {
      r = { name: path.basename(dir), error: Infinity, passed: false, detail: `threw: ${(e as Error).message}` };
    }
    if (r.passed) passed++; else failed++;
    console.log(`${r.passed ? 'PASS' : 'FAIL'}  ${r.name.padEnd(28)} error ${r.error.toExponential(2)}  ${r.detail}`);
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed > 0 ? 1 : 0;
}
