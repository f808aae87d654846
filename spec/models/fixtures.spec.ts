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
      expect(r.detail).toBe(r.detail); // keeps the detail in the failure output
      expect({ passed: r.passed, detail: r.detail }).toEqual({ passed: true, detail: expect.any(String) });
      expect(r.error).toBeLessThanOrEqual(1e-4);
    });
  }
});
