import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseGenerateArgs, runGenerate } from '../../bin/generate';

const DIR = path.join(__dirname, '..', 'fixtures', 'models', 'tiny_llama');
const EXPECTED = JSON.parse(fs.readFileSync(path.join(DIR, 'expected.json'), 'utf8')) as { prompts: number[][]; greedy: number[][] };

/** tiny_llama plus a word-level tokenizer.json: token i is the word `w<i>`. */
function withTokenizer(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gen-cli-'));
  for (const f of fs.readdirSync(DIR)) fs.copyFileSync(path.join(DIR, f), path.join(dir, f));
  const vocab = Object.fromEntries(Array.from({ length: 256 }, (_, i) => [`w${i}`, i]));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({
    version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null,
    pre_tokenizer: { type: 'Whitespace' }, post_processor: null,
    decoder: null, model: { type: 'WordLevel', vocab, unk_token: 'w0' },
  }));
  return dir;
}

describe('generate subcommand', () => {
  let err: jest.SpyInstance;
  beforeEach(() => { err = jest.spyOn(console, 'error').mockImplementation(() => undefined); });
  afterEach(() => err.mockRestore());

  it('streams the greedy continuation of --prompt-ids and prints tokens/s', async () => {
    let out = '';
    const code = await runGenerate(['--model', DIR, '--prompt-ids', EXPECTED.prompts[0].join(','), '--max-new-tokens', '12'], (s) => { out += s; });
    expect(code).toBe(0);
    expect(out.trim()).toBe(EXPECTED.greedy[0].join(' '));
    expect(err.mock.calls.map((c) => String(c[0])).join('\n')).toMatch(/^12 tokens in [\d.]+ s: [\d.]+ tokens\/s .*decode [\d.]+ tokens\/s/m);
  });

  it('encodes --prompt and decodes the output with tokenizer.json', async () => {
    let out = '';
    const prompt = EXPECTED.prompts[1].map((t) => `w${t}`).join(' ');
    const code = await runGenerate(['--model', withTokenizer(), '--prompt', prompt, '--max-new-tokens', '12', '--backend', 'wasm'], (s) => { out += s; });
    expect(code).toBe(0);
    expect(out.trim().split(/\s+/)).toEqual(EXPECTED.greedy[1].map((t) => `w${t}`));
  });

  it('rejects bad arguments with a clear message and exit code 2', async () => {
    expect(() => parseGenerateArgs(['--prompt-ids', '1'])).toThrow('[generate] --model DIR is required');
    expect(() => parseGenerateArgs(['--model', 'x'])).toThrow('[generate] give exactly one of --prompt TEXT, --prompt-ids 1,2,3 or --prompts FILE');
    expect(() => parseGenerateArgs(['--model', 'x', '--prompt-ids', '1', '--prompts', 'f'])).toThrow('[generate] give exactly one of');
    expect(() => parseGenerateArgs(['--model', 'x', '--prompt-ids', '1', '--batch', '0'])).toThrow('[generate] --batch (0) must be >= 1');
    expect(() => parseGenerateArgs(['--model', 'x', '--prompt-ids', '1,a'])).toThrow("[generate] --prompt-ids entry 1 ('a') must be a token id >= 0");
    expect(() => parseGenerateArgs(['--model', 'x', '--prompt', 'hi', '--max-new-tokens', '1.5'])).toThrow('[generate] --max-new-tokens needs an integer, got 1.5');
    expect(await runGenerate(['--model', DIR])).toBe(2);
    expect(await runGenerate(['--model', DIR, '--prompt', 'hello'])).toBe(2);
    expect(err.mock.calls.map((c) => String(c[0])).join('\n')).toContain("--prompt needs tokenizer.json in '");
  });

  it('--prompts FILE decodes every line together and prints each output with its index', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gen-batch-')), 'prompts.txt');
    fs.writeFileSync(file, `${EXPECTED.prompts.map((p) => p.join(',')).join('\n')}\n\n`);
    let out = '';
    const code = await runGenerate(['--model', DIR, '--prompts', file, '--max-new-tokens', '12', '--no-stop'], (s) => { out += s; });
    expect(code).toBe(0);
    const lines = out.trim().split('\n').sort();
    expect(lines).toEqual(EXPECTED.prompts.map((_, i) => `[${i}] ${EXPECTED.greedy[i].join(' ')}`).sort());
    expect(err.mock.calls.map((c) => String(c[0])).join('\n')).toMatch(new RegExp(`${EXPECTED.prompts.length} sequences, \\d+ tokens in .*decode [\\d.]+ tokens/s over all sequences`));
  });

  it('--batch N decodes the prompt N times together, at most N at once with --prompts', async () => {
    let out = '';
    expect(await runGenerate(['--model', DIR, '--prompt-ids', EXPECTED.prompts[0].join(','), '--batch', '3', '--max-new-tokens', '12', '--no-stop'],
      (s) => { out += s; })).toBe(0);
    expect(out.trim().split('\n').sort()).toEqual([0, 1, 2].map((i) => `[${i}] ${EXPECTED.greedy[0].join(' ')}`));
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gen-batch-')), 'p.txt');
    fs.writeFileSync(file, EXPECTED.prompts.map((p) => p.join(',')).join('\n'));
    out = '';
    expect(await runGenerate(['--model', DIR, '--prompts', file, '--batch', '1', '--max-new-tokens', '12', '--no-stop'], (s) => { out += s; })).toBe(0);
    expect(out.trim().split('\n').sort()).toEqual(EXPECTED.prompts.map((_, i) => `[${i}] ${EXPECTED.greedy[i].join(' ')}`).sort());
  });

  it('--prompts errors name the file and line', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gen-batch-'));
    const bad = path.join(dir, 'bad.txt');
    fs.writeFileSync(bad, '1,2\n3,999\n');
    expect(await runGenerate(['--model', DIR, '--prompts', bad])).toBe(2);
    fs.writeFileSync(bad, 'hello world\n');
    expect(await runGenerate(['--model', DIR, '--prompts', bad])).toBe(2);
    expect(await runGenerate(['--model', DIR, '--prompts', path.join(dir, 'missing.txt')])).toBe(2);
    const msgs = err.mock.calls.map((c) => String(c[0])).join('\n');
    expect(msgs).toContain('[generate] --prompts line 2: token 1 (999) must be in [0, 256)');
    expect(msgs).toContain('[generate] --prompts line 1 is text, which needs tokenizer.json');
    expect(msgs).toContain(`[generate] --prompts file '${path.join(dir, 'missing.txt')}' cannot be read`);
  });
});
