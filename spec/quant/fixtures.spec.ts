/**
 * Every quant/w_* golden fixture (spec/fixtures/quant, copied unedited) through AttentionWithRope with
 * quantConfig / dtype, fused (QuantMatMul kernel) and unfused (composite reference), within the case's
 * tolerance; on cpu also with the TypeScript kernel (TFJS_ATTENTION_CPU_IMPL=ts); the layer's scale
 * properties against the values the fixture gives.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { layerArgsFromFixture, fixtureWeights, runAttentionFixture } from '../../bin/conformance/attention_fixture';
import { loadAttentionFixture } from '../../bin/conformance/attention_fixture_files';
import { AttentionWithRope } from '../../lib/attention/attention_with_rope';
import { setCpuKernelImpl, getCpuKernelImpl } from '../../kernels/cpu/native';
import { describeEachBackend } from '../support/backends';

const ROOT = path.join(__dirname, '..', 'fixtures', 'quant');
const CASES = fs.readdirSync(ROOT).filter((n) => n.startsWith('w_')).sort();

describeEachBackend('quantized-weight fixtures', (backend) => {
  for (const name of CASES) {
    const f = loadAttentionFixture(path.join(ROOT, name));
    const tol = f.config.tolerance as number;
    for (const unfused of [false, true]) {
      it(`${name} ${unfused ? 'composite (unfused)' : 'fused'} within ${tol}`, async () => {
        const r = await runAttentionFixture(f, { unfused, scramblePages: true, pageSize: unfused ? 16 : 4 });
        expect(r.error).toBeLessThanOrEqual(tol);
      });
    }
    if (backend === 'cpu') {
      it(`${name} with the TypeScript cpu kernel within ${tol}`, async () => {
        const prev = getCpuKernelImpl();
        setCpuKernelImpl('ts');
        try {
          const r = await runAttentionFixture(f, { pageSize: 4 });
          expect(r.error).toBeLessThanOrEqual(tol);
        } finally { setCpuKernelImpl(prev); }
      });
      it(`${name} with stackedQkv (one quantization of x for q, k and v) within ${tol}`, async () => {
        const r = await runAttentionFixture(f, { pageSize: 4, layerOverrides: { stackedQkv: true } });
        expect(r.error).toBeLessThanOrEqual(tol);
      });
    }
  }

  it('qkvInputScale / qkvWeightScale2 / qkvWeightScale follow the reference', () => {
    for (const name of CASES) {
      const f = loadAttentionFixture(path.join(ROOT, name));
      const q = f.config.quant;
      const layer = new AttentionWithRope(layerArgsFromFixture(f.config, 16));
      layer.setHfWeights(fixtureWeights(f));
      const input = layer.qkvInputScale, s2 = layer.qkvWeightScale2, ws = layer.qkvWeightScale;
      if (q.qkv_input_scale === null) expect([name, input]).toEqual([name, null]);
      else expect(input!.dataSync()[0]).toBeCloseTo(q.qkv_input_scale, 9);
      if (q.qkv_weight_scale_2 !== undefined) expect(s2!.dataSync()[0]).toBeCloseTo(q.qkv_weight_scale_2, 12);
      else expect([name, s2]).toEqual([name, null]);
      const rows = layer.qDim + 2 * layer.kvDim;
      const expectedShape: Record<string, number[] | null> = {
        w_fp8_static: [rows, 1], w_fp8_dynamic: [rows, 1], w_int8_w8a8: [rows, 1], w_fp8_block: [4, 2], w_nvfp4: [rows, 16],
        w_gptq_int4: [4, rows], w_bf16: null, w_f16: null,
      };
      expect([name, ws ? ws.shape : null]).toEqual([name, expectedShape[name]]);
      if (name === 'w_fp8_static') {
        const k = f.raw!.get('k_proj.weight_scale')!;
        expect(ws!.dataSync()[layer.qDim]).toBe(new Float32Array(k.bytes.slice().buffer)[0]); // k's tensor scale broadcast to its rows
      }
      for (const t of [input, s2, ws]) t?.dispose();
      layer.dispose();
    }
  });
});

// webgpu in Node (Dawn on a software Vulkan driver in CI): the WGSL QuantMatMul with the fused
// attention kernels (the composite store cannot read back synchronously there; see spec/attention).
describeEachBackend('quantized-weight fixtures, fused', () => {
  for (const name of CASES) {
    it(`${name} within its tolerance`, async () => {
      const f = loadAttentionFixture(path.join(ROOT, name));
      const r = await runAttentionFixture(f, { scramblePages: true, pageSize: 4 });
      expect(r.error).toBeLessThanOrEqual(f.config.tolerance as number);
    }, 300000); // the decode kernels compile per (rows, shape): ~10 pipelines a case, seconds each on lavapipe
  }
}, ['webgpu']);
