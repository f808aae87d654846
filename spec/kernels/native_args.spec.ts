/**
 * native/kernel_args.h and kernels/cpu/native_args.ts name the same integer-argument indices.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { ATTN_ARG, ROPE_ARG, TRAIN_ARG } from '../../kernels/cpu/native_args';

const header = fs.readFileSync(path.resolve(__dirname, '../../native/kernel_args.h'), 'utf8');

/** The enumerators of `enum <name> { ... }` in order, prefix stripped. */
function enumNames(name: string, prefix: string): string[] {
  const m = new RegExp(`enum ${name} \\{([^}]*)\\}`).exec(header);
  if (!m) throw new Error(`enum ${name} not found in native/kernel_args.h`);
  return m[1].split(',').map((s) => s.trim()).filter(Boolean).map((s) => s.slice(prefix.length));
}

describe('native integer-argument table', () => {
  for (const [name, prefix, table] of [['RopeArg', 'ROPE_', ROPE_ARG], ['AttnArg', 'ATTN_', ATTN_ARG], ['TrainArg', 'TRAIN_', TRAIN_ARG]] as const) {
    it(`${name}: the header's order is the TypeScript table's indices`, () => {
      const names = enumNames(name, prefix);
      expect(Object.fromEntries(names.map((n, i) => [n, i]))).toEqual(table);
    });
  }
});
