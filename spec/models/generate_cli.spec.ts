import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CliIo } from '../../bin/cli_options';
import { type GenerateJson, parseGenerateArgs, runGenerate } from '../../bin/generate';

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

/** Captures what a command writes to stdout and stderr. */
function capture(): CliIo & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out: (t: string) => { io.stdout += t; }, err: (t: string) => { io.stderr += t; } };
  return io;
}

describe('generate subcommand', () => {
  it('streams the greedy continuation of --prompt-ids and prints tokens/s', async () => {
    const io = capture();
    const code = await runGenerate(['--model', DIR, '--prompt-ids', EXPECTED.prompts[0].join(','), '--max-new-tokens', '12'], io);
    expect(code).toBe(0);
    expect(io.stdout.trim()).toBe(EXPECTED.greedy[0].join(' '));
    expect(io.stderr).toMatch(/^12 tokens in [\d.]+ s: [\d.]+ tokens\/s .*decode [\d.]+ tokens\/s/m);
  });

  it('encodes --prompt and decodes the output with tokenizer.json', async () => {
    const io = capture();
    const prompt = EXPECTED.prompts[1].map((t) => `w${t}`).join(' ');
    const code = await runGenerate(['--model', withTokenizer(), '--prompt', prompt, '--max-new-tokens', '12', '--backend', 'wasm'], io);
    expect(code).toBe(0);
    expect(io.stdout.trim().split(/\s+/)).toEqual(EXPECTED.greedy[1].map((t) => `w${t}`));
  });

  it('--json prints one object with the tokens, the text and the timings, and nothing else on stdout', async () => {
    const io = capture();
    const prompt = EXPECTED.prompts[1].map((t) => `w${t}`).join(' ');
    const code = await runGenerate(['--model', withTokenizer(), '--prompt', prompt, '--max-new-tokens', '12', '--json'], io);
    expect(code).toBe(0);
    expect(io.stdout.trim().split('\n')).toHaveLength(1);
    const r = JSON.parse(io.stdout) as GenerateJson;
    expect(r.promptIds).toEqual(EXPECTED.prompts[1]);
    expect(r.tokens).toEqual(EXPECTED.greedy[1]);
    expect(r.text!.trim().split(/\s+/)).toEqual(EXPECTED.greedy[1].map((t) => `w${t}`));
    expect(r).toMatchObject({ backend: 'cpu', finishReason: 'length' });
    expect(r.tokensPerSecond).toBeGreaterThan(0);
    expect(r.decodeTokensPerSecond).toBeGreaterThan(0);
    expect(r.seconds).toBeGreaterThanOrEqual(r.firstTokenSeconds!);
    expect(io.stderr).toBe('');
  });

  it('rejects bad arguments with a clear message and exit code 2', async () => {
    expect(() => parseGenerateArgs(['--prompt-ids', '1'])).toThrow('[generate] --model DIR is required');
    expect(() => parseGenerateArgs(['--model', 'x'])).toThrow('[generate] give exactly one of --prompt TEXT, --prompt-ids 1,2,3 or --prompts FILE');
    expect(() => parseGenerateArgs(['--model', 'x', '--prompt-ids', '1', '--prompts', 'f'])).toThrow('[generate] give exactly one of');
    expect(() => parseGenerateArgs(['--model', 'x', '--prompt-ids', '1', '--batch', '0'])).toThrow("[generate] option '--batch <n>' argument '0' is invalid. It must be an integer >= 1.");
    expect(() => parseGenerateArgs(['--model', 'x', '--prompt-ids', '1,a'])).toThrow("[generate] --prompt-ids entry 1 ('a') must be a token id >= 0");
    expect(() => parseGenerateArgs(['--model', 'x', '--prompt', 'hi', '--max-new-tokens', '1.5'])).toThrow("[generate] option '--max-new-tokens <n>' argument '1.5' is invalid. It must be an integer >= 1.");
    expect(() => parseGenerateArgs(['--model', 'x', '--prompt', 'hi', '--temprature', '1'])).toThrow("[generate] unknown option '--temprature'");
    expect(() => parseGenerateArgs(['--model', 'x', '--prompt', 'hi', '--backend', 'gpu'])).toThrow("[generate] option '--backend <name>' argument 'gpu' is invalid. Allowed choices are cpu, wasm, webgpu, webgl, tensorflow.");
    expect(parseGenerateArgs(['--model', 'x', '--prompt', 'hi', '--no-stop', '--top-p', '0.9', '--seed', '3'])).toMatchObject({
      model: 'x', prompt: 'hi', stop: false, sampling: { topP: 0.9 }, seed: 3, maxNewTokens: 32, backend: 'cpu', json: false,
    });
    const io = capture();
    expect(await runGenerate(['--model', DIR], io)).toBe(2);
    expect(await runGenerate(['--model', DIR, '--prompt', 'hello'], io)).toBe(2);
    expect(io.stderr).toContain("--prompt needs tokenizer.json in '");
    expect(io.stdout).toBe('');
  });

  it('--prompts FILE decodes every line together and prints each output with its index', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gen-batch-')), 'prompts.txt');
    fs.writeFileSync(file, `${EXPECTED.prompts.map((p) => p.join(',')).join('\n')}\n\n`);
    const io = capture();
    expect(await runGenerate(['--model', DIR, '--prompts', file, '--max-new-tokens', '12', '--no-stop'], io)).toBe(0);
    expect(io.stdout.trim().split('\n').sort()).toEqual(EXPECTED.prompts.map((_, i) => `[${i}] ${EXPECTED.greedy[i].join(' ')}`).sort());
    expect(io.stderr).toMatch(new RegExp(`${EXPECTED.prompts.length} sequences, \\d+ tokens in .*decode [\\d.]+ tokens/s over all sequences`));
  });

  it('--batch N decodes the prompt N times together, at most N at once with --prompts', async () => {
    let io = capture();
    expect(await runGenerate(['--model', DIR, '--prompt-ids', EXPECTED.prompts[0].join(','), '--batch', '3', '--max-new-tokens', '12', '--no-stop'], io)).toBe(0);
    expect(io.stdout.trim().split('\n').sort()).toEqual([0, 1, 2].map((i) => `[${i}] ${EXPECTED.greedy[0].join(' ')}`));
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gen-batch-')), 'p.txt');
    fs.writeFileSync(file, EXPECTED.prompts.map((p) => p.join(',')).join('\n'));
    io = capture();
    expect(await runGenerate(['--model', DIR, '--prompts', file, '--batch', '1', '--max-new-tokens', '12', '--no-stop'], io)).toBe(0);
    expect(io.stdout.trim().split('\n').sort()).toEqual(EXPECTED.prompts.map((_, i) => `[${i}] ${EXPECTED.greedy[i].join(' ')}`).sort());
  });

  it('--prompts errors name the file and line', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gen-batch-'));
    const bad = path.join(dir, 'bad.txt');
    const io = capture();
    fs.writeFileSync(bad, '1,2\n3,999\n');
    expect(await runGenerate(['--model', DIR, '--prompts', bad], io)).toBe(2);
    fs.writeFileSync(bad, 'hello world\n');
    expect(await runGenerate(['--model', DIR, '--prompts', bad], io)).toBe(2);
    expect(await runGenerate(['--model', DIR, '--prompts', path.join(dir, 'missing.txt')], io)).toBe(2);
    expect(io.stderr).toContain('[generate] --prompts line 2: token 1 (999) must be in [0, 256)');
    expect(io.stderr).toContain('[generate] --prompts line 1 is text, which needs tokenizer.json');
    expect(io.stderr).toContain(`[generate] --prompts file '${path.join(dir, 'missing.txt')}' cannot be read`);
  });
});
