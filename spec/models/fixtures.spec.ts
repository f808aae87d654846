import * as fs from 'node:fs';
import * as path from 'node:path';
import { isModelFixture, runModelFixture } from '../../bin/conformance_models';
import { describeEachBackend } from '../support/backends';

const ROOT = path.join(__dirname, '..', 'fixtures', 'models');
const CASES = fs.readdirSync(ROOT).filter((n) => isModelFixture(path.join(ROOT, n))).sort();

describeEachBackend('golden model fixtures', () => {
  it('finds the model fixtures', () => expect(CASES.length).toBeGreaterThanOrEqual(4));
  for (const name of CASES) {
    it(`${name}: teacher-forced logits and greedy continuation`, async () => {
      const r = await runModelFixture(path.join(ROOT, name));
      if (!r.passed) throw new Error(`${name}: ${r.detail}`);
      expect(r.error).toBeLessThanOrEqual(1e-4);
    });
  }
});
