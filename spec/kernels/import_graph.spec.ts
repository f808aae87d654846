/**
 * The layering: core/ is the bottom (imports only core/), kernels/ imports only core/, kernels/
 * and tfjs; nothing under core/ or kernels/ imports lib/, models/ or a Node built-in. Above them
 * models/ imports lib/ and never the other way: lib/ (the layer, rope, cache, sharding, loaders,
 * layer-level training) imports no models/ file, except the two entry files that export both.
 */
import { importsOf, sourceFiles } from '../support/import_graph';

const TFJS = /^@tensorflow\/tfjs$/;

function offending(dirs: string[], allowed: (spec: string) => boolean): string[] {
  return dirs.flatMap(sourceFiles).flatMap((f) => importsOf(f).filter((s) => !allowed(s)).map((s) => `${f} imports ${s}`));
}

describe('import graph', () => {
  it('core/ imports only core/', () => {
    expect(offending(['core'], (s) => s.startsWith('core/'))).toEqual([]);
  });

  it('kernels/ imports only core/, kernels/ and @tensorflow/tfjs', () => {
    expect(offending(['kernels'], (s) => s.startsWith('core/') || s.startsWith('kernels/') || TFJS.test(s))).toEqual([]);
  });

  it('lib/ imports no models/ file (only the entries lib/index.ts and lib/node.ts join the two)', () => {
    const entries = new Set(['lib/index.ts', 'lib/node.ts']);
    const lib = sourceFiles('lib').filter((f) => !entries.has(f));
    expect(lib.flatMap((f) => importsOf(f).filter((s) => s.startsWith('models/')).map((s) => `${f} imports ${s}`))).toEqual([]);
  });

  it('models/ owns the model-level code: generation, the training forward, initialisation and the HF export', () => {
    for (const f of ['models/generation/generator.ts', 'models/train_forward.ts', 'models/init.ts', 'models/export.ts', 'models/save_checkpoint.ts']) {
      expect([f, sourceFiles('models').includes(f)]).toEqual([f, true]);
    }
    expect(sourceFiles('models').flatMap(importsOf)).toContain('lib/attention/attention_with_rope.ts'); // the direction it may go
  });

  it('the checker sees the imports it must reject', () => {
    // a self-check of the parser on this repository's own layer above: lib/ imports kernels/ and node: modules
    const lib = sourceFiles('lib').flatMap(importsOf);
    expect(lib).toContain('kernels/register_all.ts');
    expect(lib.some((s) => s.startsWith('node:'))).toBe(true);
  });
});
