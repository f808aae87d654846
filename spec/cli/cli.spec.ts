/**
 * The command line as a user meets it: --help on every command, unknown flags named, --json for
 * scripts, exit statuses, and no tfjs "install our node backend" banner.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CliIo } from '../../bin/cli_options';
import type { ConformanceJson } from '../../bin/conformance/run';
import { runCli } from '../../bin/program';
import { runMainJob } from '../../train/main_command';

const FIXTURES = path.join(__dirname, '..', 'fixtures');
const ATTENTION = path.join(FIXTURES, 'attention', 'chunked_causal');
const MODEL = path.join(FIXTURES, 'models', 'tiny_llama');

function capture(): CliIo & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out: (t: string) => { io.stdout += t; }, err: (t: string) => { io.stderr += t; } };
  return io;
}

async function cli(...argv: string[]) {
  const io = capture();
  const code = await runCli(argv, io);
  return { code, ...io };
}

describe('tfjs-attention-rope CLI', () => {
  it('--help lists the commands; each command has its own --help with every option', async () => {
    const root = await cli('--help');
    expect(root.code).toBe(0);
    expect(root.stdout).toMatch(/Usage: tfjs-attention-rope \[options\] \[command\]/);
    expect(root.stdout).toMatch(/conformance \[options\] <dirs\.\.\.>/);
    expect(root.stdout).toMatch(/generate \[options\]/);
    expect(root.stdout).toContain('npm start -- --help');

    const gen = await cli('generate', '--help');
    expect(gen.code).toBe(0);
    for (const flag of ['--model <dir>', '--prompt <text>', '--prompt-ids <ids>', '--max-new-tokens <n>', '--backend <name>', '--temperature <t>',
      '--top-k <k>', '--top-p <p>', '--seed <s>', '--no-stop', '--batch <n>', '--prompts <file>', '--json']) expect(gen.stdout).toContain(flag);
    expect((await cli('help', 'generate')).stdout).toBe(gen.stdout);

    const conf = await cli('conformance', '--help');
    expect(conf.code).toBe(0);
    for (const flag of ['<dirs...>', '--backend <name>', '--unfused', '--page-size <n>', '--devices <list>', '--json']) expect(conf.stdout).toContain(flag);
    expect((await cli('--version')).stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('unknown flags, commands and bad values fail with exit 2, naming the command, the flag and the value', async () => {
    const gen = await cli('generate', '--model', MODEL, '--prompt-ids', '1', '--max-new-token', '3');
    expect(gen.code).toBe(2);
    expect(gen.stderr).toContain("[generate] unknown option '--max-new-token'");
    expect(gen.stderr).toContain('(Did you mean --max-new-tokens?)');
    expect(gen.stderr).toContain('--help');
    const conf = await cli('conformance', ATTENTION, '--unfussed');
    expect(conf).toMatchObject({ code: 2, stdout: '' });
    expect(conf.stderr).toContain("[conformance] unknown option '--unfussed'");
    const page = await cli('conformance', ATTENTION, '--page-size', '0');
    expect(page.stderr).toContain("[conformance] option '--page-size <n>' argument '0' is invalid. It must be an integer >= 1.");
    expect((await cli('conformance')).stderr).toContain("[conformance] missing required argument 'dirs'");
    expect((await cli('conformance', ATTENTION, '--devices', ',')).stderr).toContain("[conformance] --devices (',') must name at least one device");
    const cmd = await cli('conformace');
    expect(cmd.code).toBe(2);
    expect(cmd.stderr).toContain("[tfjs-attention-rope] unknown command 'conformace'");
    expect((await cli()).code).toBe(2);
  });

  it('conformance --json prints one object with every case; the plain output has a line per case', async () => {
    const json = await cli('conformance', ATTENTION, MODEL, '--json');
    expect(json.code).toBe(0);
    expect(json.stdout.trim().split('\n')).toHaveLength(1);
    const r = JSON.parse(json.stdout) as ConformanceJson;
    expect(r).toMatchObject({ backend: 'cpu', path: 'fused', devices: null, passed: 2, failed: 0 });
    expect(r.fixtures.map((f) => [f.name, f.dir, f.passed])).toEqual([['chunked_causal', ATTENTION, true], ['tiny_llama', MODEL, true]]);
    for (const f of r.fixtures) expect(f.error).toBeLessThan(1e-3);
    const plain = await cli('conformance', ATTENTION, '--unfused', '--page-size', '4');
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(/^conformance on backend 'cpu', composite path, 1 fixtures\nPASS  chunked_causal .*\n1 passed, 0 failed\n$/);
  });

  it('conformance --json reports a case that throws with error null and exits 1; no fixture found exits 1, a missing folder 2', async () => {
    const broken = fs.mkdtempSync(path.join(os.tmpdir(), 'conformance-broken-'));
    fs.writeFileSync(path.join(broken, 'config.json'), '{"not": "a fixture"}');
    fs.writeFileSync(path.join(broken, 'tensors.safetensors'), 'garbage');
    const r = await cli('conformance', ATTENTION, broken, '--json');
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout) as ConformanceJson;
    expect(j).toMatchObject({ passed: 1, failed: 1 });
    expect(j.fixtures[1]).toMatchObject({ name: path.basename(broken), dir: broken, passed: false, error: null });
    expect(j.fixtures[1].detail).toMatch(/^threw: /);
    const empty = await cli('conformance', fs.mkdtempSync(path.join(os.tmpdir(), 'conformance-empty-')), '--json');
    expect(empty).toMatchObject({ code: 1, stdout: '' });
    expect(empty.stderr).toContain('[conformance] no fixtures found under');
    const missing = await cli('conformance', path.join(FIXTURES, 'no_such_folder'), '--json');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('[conformance] no such folder:');
  });

  it('prints no tfjs "install our node backend" banner, while tfjs warnings still print', async () => {
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const r = await cli('generate', '--model', MODEL, '--prompt-ids', '1,2', '--max-new-tokens', '2', '--backend', 'cpu');
      expect(r.code).toBe(0);
      const said = warn.mock.calls.map((c) => c.join(' ')).join('\n') + r.stderr + r.stdout;
      expect(said).not.toMatch(/looks like you are running TensorFlow\.js in Node\.js/);
      const tf = await import('@tensorflow/tfjs');
      tf.backend_util.warn('a real warning');
      expect(warn).toHaveBeenLastCalledWith('a real warning');
    } finally {
      warn.mockRestore();
    }
  });
});

describe('main job command line', () => {
  it('--help shows every knob with its default; unknown flags and bad values exit 2 naming them', async () => {
    const help = capture();
    expect(await runMainJob(['--help'], help)).toBe(0);
    for (const flag of ['--steps <n>', '(default: 600)', '--backend <name>', '--seed <n>', '--out <file>', 'out/loss_curve.png', '--batch <n>', '--lr <x>',
      '--hidden <n>', '--layers <n>', '--heads <n>', '--kv-heads <n>', '--theta <x>', '--max-len <n>', '--eval <n>', '--data-parallel', '--accumulate <k>', '--lora <r>', '--save <dir>', 'Exit status']) {
      expect(help.stdout).toContain(flag);
    }
    const bad = capture();
    expect(await runMainJob(['--stpes', '3'], bad)).toBe(2);
    expect(bad.stderr).toContain("[train] unknown option '--stpes'");
    expect(await runMainJob(['--lr=-1'], bad)).toBe(2);
    expect(bad.stderr).toContain("[train] option '--lr <x>' argument '-1' is invalid. It must be > 0.");
    expect(await runMainJob(['--backend', 'tpu'], bad)).toBe(2);
    expect(bad.stderr).toContain("argument 'tpu' is invalid. Allowed choices are auto, cpu, wasm, webgpu, webgl, tensorflow.");
    expect(await runMainJob(['--accumulate', '0'], bad)).toBe(2);
    expect(bad.stderr).toContain("[train] option '--accumulate <k>' argument '0' is invalid. It must be an integer >= 1.");
    expect(bad.stdout).toBe('');
  });
});
