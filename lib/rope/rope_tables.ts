/** The cos/sin tables kernels read live in core/rope_tables.ts; re-exported for lib/. */
export type { RopeTables } from '../../core/rope_tables.js';
