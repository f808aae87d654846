import * as path from 'node:path';

/** CommonJS twin of lib/util/package_root.ts, used under jest. */
export const packageRoot: string = path.resolve(__dirname, '..', '..');
