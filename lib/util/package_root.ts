import { fileURLToPath } from 'node:url';

/** Absolute path of the package root (the folder holding package.json), from dist/lib/util/. */
export const packageRoot: string = fileURLToPath(new URL('../../../', import.meta.url));
