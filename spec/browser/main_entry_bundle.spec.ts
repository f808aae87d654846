/**
 * The main entry (`tfjs-attention-rope`, lib/index.ts) is browser-clean: plain esbuild bundles it
 * for the browser platform with no plugins or stubs, and nothing in its import graph is a Node
 * built-in. The browser example and the browser fixture page bundle the same way (browser/bundle.cjs).
 */
import * as path from 'node:path';
import { builtinModules } from 'node:module';
import * as esbuild from 'esbuild';

import { importsOf, repoRoot } from '../support/import_graph';

const NODE_BUILTIN = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

async function bundle(entry: string): Promise<esbuild.BuildResult & { metafile: esbuild.Metafile }> {
  return esbuild.build({
    entryPoints: [path.join(repoRoot, entry)], bundle: true, write: false, format: 'esm', platform: 'browser',
    logLevel: 'silent', metafile: true,
  });
}

/** Every source file reachable from `entry` through relative imports, with the bare specifiers it reaches. */
function graph(entry: string): { files: Set<string>; bare: Map<string, string> } {
  const files = new Set<string>(), bare = new Map<string, string>(), todo = [entry];
  while (todo.length) {
    const f = todo.pop()!;
    if (files.has(f)) continue;
    files.add(f);
    for (const s of importsOf(f)) {
      if (s.endsWith('.ts')) todo.push(s); else bare.set(s, f);
    }
  }
  return { files, bare };
}

describe('browser-clean main entry', () => {
  it('has no Node built-in anywhere in its import graph', () => {
    const { files, bare } = graph('lib/index.ts');
    expect(files.size).toBeGreaterThan(50);
    expect([...bare].filter(([s]) => NODE_BUILTIN.has(s)).map(([s, f]) => `${f} imports ${s}`)).toEqual([]);
    expect(files.has('lib/backends/native_node.ts')).toBe(false);
  });

  it('bundles with plain esbuild for the browser platform (no plugins, no stubs)', async () => {
    const r = await bundle('lib/index.ts');
    expect(r.errors).toEqual([]);
    const inputs = Object.keys(r.metafile.inputs);
    expect(inputs.filter((i) => /^node:|(^|\/)(fs|path|module|url|worker_threads|child_process)$/.test(i))).toEqual([]);
    expect(inputs.some((i) => i.endsWith('kernels/register_all.ts'))).toBe(true);
  }, 120000);

  it('fails on a Node built-in: the Node entry does not bundle for the browser', async () => {
    await expect(bundle('lib/node.ts')).rejects.toThrow(/Could not resolve "node:/);
  }, 120000);

  it('the browser example and fixture page bundle the same way (browser/bundle.cjs has no stubs)', async () => {
    for (const e of ['browser/example.ts', 'browser/fixtures_page.ts']) expect((await bundle(e)).errors).toEqual([]);
    const { bundleForBrowser } = require('../../browser/bundle.cjs') as { bundleForBrowser: unknown };
    expect(String(bundleForBrowser)).not.toMatch(/plugins/);
  }, 120000);
});
