/** `conformance` on a folder that holds no fixture fails (exit status 1) with a message naming the folder. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runConformance } from '../../bin/conformance/run';

describe('conformance with nothing to run', () => {
  it('an empty folder (or one with only unrelated files) is a failed run, not "0 passed, 0 failed"', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'no-fixtures-'));
    fs.mkdirSync(path.join(dir, 'sub'));
    fs.writeFileSync(path.join(dir, 'sub', 'notes.txt'), 'not a fixture');
    const errors: string[] = [];
    const io = { out: (_s: string) => undefined, err: (s: string) => { errors.push(s); } };
    try {
      expect(await runConformance([dir], io)).toBe(1);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect(errors.join('\n')).toContain(`[conformance] no fixtures found under ${dir}`);
  });
});
