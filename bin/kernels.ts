#!/usr/bin/env node
/**
 * Prints the kernel table (bin/kernel_table.ts): every kernel, the backends that register it, its
 * composite reference. Exits 1, naming the rows, when a kernel lacks its reference or file.
 *
 *   node dist/bin/kernels.js
 */
import { formatKernelTable, kernelTable, rowProblems } from './kernel_table.js';
import { packageRoot } from '../lib/util/package_root.js';

const rows = kernelTable(packageRoot);
console.log(formatKernelTable(rows));
const problems = rows.flatMap(rowProblems);
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
