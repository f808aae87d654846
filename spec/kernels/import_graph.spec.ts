/**
 * The layering: core/ is the bottom (imports only core/), kernels/ imports only core/, kernels/
 * and tfjs; nothing under core/ or kernels/ imports lib/, models/ or a Node built-in.
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

  it('the checker sees the imports it must reject', () => {
    // a self-check of the parser on this repository's own layer above: lib/ imports kernels/ and node: modules
    const lib = sourceFiles('lib').flatMap(importsOf);
    expect(lib).toContain('kernels/register_all.ts');
    expect(lib.some((s) => s.startsWith('node:'))).toBe(true);
  });
});
