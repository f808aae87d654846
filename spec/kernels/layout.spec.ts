/**
 * The kernel tree's layout: every kernel name in kernels/kernel_names.ts has a composite reference
 * kernels/reference/<Name>.ts, every registered config lives in kernels/<backend>/<Name>.ts, and
 * the one list (kernels/register_all.ts) registers every name on cpu and wasm with its gradient.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';

import { FlashAttentionRaggedGrad, FusedRMSNorm, FusedSwiGLUMLP, KERNEL_NAMES } from '../../kernels/kernel_names';

/**
 * Inference-only kernels: no gradient by design; their ops (kernels/decoder_steps.ts) run the
 * composite reference whenever a gradient is being recorded.
 */
const INFERENCE_ONLY: readonly string[] = [FusedRMSNorm, FusedSwiGLUMLP];
import { kernelConfigs, registerAllKernels } from '../../kernels/register_all';
import { formatKernelTable, kernelTable, rowProblems } from '../../bin/kernel_table';

const root = path.resolve(__dirname, '../..');

describe('kernel tree', () => {
  it('every kernel has a composite reference beside it', () => {
    for (const name of KERNEL_NAMES) expect([name, fs.existsSync(path.join(root, 'kernels/reference', `${name}.ts`))]).toEqual([name, true]);
  });

  it('every registered config is kernels/<backend>/<KernelName>.ts and exported from there', () => {
    for (const k of kernelConfigs()) {
      const file = path.join(root, 'kernels', k.backendName, `${k.kernelName}.ts`);
      expect([file, fs.existsSync(file)]).toEqual([file, true]);
      if (!KERNEL_NAMES.includes(k.kernelName as never)) {
        // a gap kernel tfjs lacks on that backend: its reference sits beside the others too
        expect(fs.existsSync(path.join(root, 'kernels/reference', `${k.kernelName}.ts`))).toBe(true);
      }
    }
  });

  it('registerAllKernels registers every name on cpu and wasm and a gradient for every differentiable kernel', () => {
    registerAllKernels();
    for (const name of KERNEL_NAMES) {
      expect([name, 'cpu', tf.getKernel(name, 'cpu') !== undefined]).toEqual([name, 'cpu', true]);
      expect([name, 'wasm', tf.getKernel(name, 'wasm') !== undefined]).toEqual([name, 'wasm', true]);
      if (name !== FlashAttentionRaggedGrad && !INFERENCE_ONLY.includes(name)) expect([name, tf.getGradient(name) !== undefined]).toEqual([name, true]);
    }
  });

  it('no regex discovery and no per-backend register files remain', () => {
    expect(fs.existsSync(path.join(root, 'kernels/cpu/register.ts'))).toBe(false);
    expect(fs.existsSync(path.join(root, 'kernels/webgpu/register.ts'))).toBe(false);
    expect(fs.existsSync(path.join(root, 'lib/training/kernels'))).toBe(false);
    expect(fs.readFileSync(path.join(root, 'lib/backends/select.ts'), 'utf8')).not.toContain('Object.entries(m)');
  });

  it('the kernel table (node dist/bin/kernels.js) lists every kernel with its reference and a file per registered backend', () => {
    const rows = kernelTable(root);
    expect(rows.flatMap(rowProblems)).toEqual([]);
    for (const name of KERNEL_NAMES) expect(rows.map((r) => r.name)).toContain(name);
    const text = formatKernelTable(rows);
    for (const r of rows) expect(text).toContain(`reference/${r.name}.ts`);
    // the check itself: a kernel without a reference, or registered without its file, is a problem row
    const lacking = { ...rows[0], reference: false, backends: { ...rows[0].backends, cpu: { registered: true, file: false } } };
    expect(rowProblems(lacking)).toEqual([`${lacking.name}: no kernels/reference/${lacking.name}.ts`,
      `${lacking.name}: registered on cpu without kernels/cpu/${lacking.name}.ts`]);
  });

  it('the BatchMatMul gradient is tfjs\'s own until installMatMulGradient is called (opt-in)', async () => {
    const stock = tf.getGradient('BatchMatMul');
    registerAllKernels();
    expect(tf.getGradient('BatchMatMul')).toBe(stock);
  });
});
