import * as fs from 'node:fs';
import * as path from 'node:path';
import { runAttentionFixture, TOLERANCE } from '../../bin/conformance/attention_fixture';
import { loadAttentionFixture } from '../../bin/conformance/attention_fixture_files';
import { describeEachBackend } from '../support/backends';

const ROOT = path.join(__dirname, '..', 'fixtures', 'attention');
const CASES = fs.readdirSync(ROOT).sort();

describeEachBackend('golden attention fixtures', () => {
  for (const name of CASES) {
    for (const unfused of [false, true]) {
      it(`${name} ${unfused ? 'composite (unfused)' : 'fused'} within ${TOLERANCE}`, async () => {
        const r = await runAttentionFixture(loadAttentionFixture(path.join(ROOT, name)), { unfused, scramblePages: true, pageSize: unfused ? 16 : 4 });
        expect(r.error).toBeLessThanOrEqual(TOLERANCE);
      });
    }
  }
});

// webgpu in Node (Dawn on a software Vulkan driver in CI): the fused kernels. The composite store
// needs a synchronous readback, which webgpu has no way to do in Node (a clear error says so).
describeEachBackend('golden attention fixtures, fused', () => {
  for (const name of CASES) {
    it(`${name} within ${TOLERANCE}`, async () => {
      const r = await runAttentionFixture(loadAttentionFixture(path.join(ROOT, name)), { scramblePages: true, pageSize: 4 });
      expect(r.error).toBeLessThanOrEqual(TOLERANCE);
    });
  }
  it('the composite store says why it cannot run', async () => {
    const r = runAttentionFixture(loadAttentionFixture(path.join(ROOT, 'llama_gqa')), { unfused: true });
    await expect(r).rejects.toThrow(/reads K\/V back synchronously, which backend 'webgpu' cannot do in Node/);
  });
}, ['webgpu']);
