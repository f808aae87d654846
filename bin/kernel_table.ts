/**
 * The kernel tree at a glance: every kernel of kernels/register_all.ts, the backends that register
 * it (each a file kernels/<backend>/<Name>.ts) and its composite reference kernels/reference/<Name>.ts.
 *
 * Printed by `node dist/bin/kernels.js` (bin/kernels.ts); spec/kernels/layout.spec.ts fails on any problem row.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import * as kernelNames from '../kernels/kernel_names.js';
import { KERNEL_NAMES } from '../kernels/kernel_names.js';
import { kernelConfigs } from '../kernels/register_all.js';

export const KERNEL_BACKENDS = ['cpu', 'wasm', 'webgpu'] as const;

export interface KernelRow {
  name: string;
  /** Named in kernels/kernel_names.ts (false: a tfjs kernel this package fills in where tfjs lacks it). */
  named: boolean;
  /** kernels/reference/<name>.ts exists. */
  reference: boolean;
  /** Per backend: registered, and whether its kernels/<backend>/<name>.ts exists. */
  backends: Record<string, { registered: boolean; file: boolean }>;
}

/** One row per kernel name registered on any backend or named in kernel_names.ts. `root`: the package. */
export function kernelTable(root: string): KernelRow[] {
  const configs = kernelConfigs();
  const names = [...new Set<string>([...KERNEL_NAMES, ...configs.map((k) => k.kernelName)])];
  return names.map((name) => ({
    name,
    named: (Object.values(kernelNames) as unknown[]).includes(name),
    reference: fs.existsSync(path.join(root, 'kernels', 'reference', `${name}.ts`)),
    backends: Object.fromEntries(KERNEL_BACKENDS.map((b) => [b, {
      registered: configs.some((k) => k.kernelName === name && k.backendName === b),
      file: fs.existsSync(path.join(root, 'kernels', b, `${name}.ts`)),
    }])),
  }));
}

/** What is wrong with a row: no reference, or a registered backend without its file. */
export function rowProblems(r: KernelRow): string[] {
  const out = r.reference ? [] : [`${r.name}: no kernels/reference/${r.name}.ts`];
  for (const [b, s] of Object.entries(r.backends)) if (s.registered && !s.file) out.push(`${r.name}: registered on ${b} without kernels/${b}/${r.name}.ts`);
  return out;
}

/** The table as text: `x` registered (its file beside it), `-` composite reference only there. */
export function formatKernelTable(rows: KernelRow[]): string {
  const head = ['kernel', ...KERNEL_BACKENDS, 'reference'];
  const body = rows.map((r) => [r.name + (r.named ? '' : ' *'), ...KERNEL_BACKENDS.map((b) => (r.backends[b].registered ? 'x' : '-')),
    r.reference ? `reference/${r.name}.ts` : 'MISSING']);
  const w = head.map((_, i) => Math.max(...[head, ...body].map((row) => row[i].length)));
  const line = (row: string[]) => row.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd();
  return [line(head), ...body.map(line), '', 'x: kernels/<backend>/<kernel>.ts registered; -: that backend runs the composite reference;',
    '*: a tfjs kernel (not ours, so not in kernel_names.ts) that tfjs lacks on that backend'].join('\n');
}
