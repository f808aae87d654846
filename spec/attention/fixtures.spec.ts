import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadAttentionFixture, runAttentionFixture, TOLERANCE } from '../../bin/conformance/attention_fixture';
import { describeEachBackend } from '../support/backends';

const ROOT = path.join(__dirname, '..', 'fixtures', 'attention');
const CASES = fs.readdirSync(ROOT).sort();

describeEachBackend('golden attention fixtures', () => {
  for (const name of CASES) {
    for (const unfused of [false, true]) {
      it(`${name} ${unfused ? 'composite (unfused)' : 'fused'} within ${TOLERANCE}`, () => {
        const r = runAttentionFixture(loadAttentionFixture(path.join(ROOT, name)), { unfused, scramblePages: true, pageSize: unfused ? 16 : 4 });
        expect(r.error).toBeLessThanOrEqual(TOLERANCE);
      });
    }
  }
});
