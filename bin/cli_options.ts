/**
 * What every command of the CLI shares on top of commander: where output goes, how errors read
 * (`[generate] unknown option '--foo'`, exit status 2 instead of commander's process.exit), and
 * value parsers that name the option and the value they reject.
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';

/** Where a command writes: `out` is stdout (results, --json), `err` is stderr (progress, errors). */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

export const processIo: CliIo = {
  out: (s) => { process.stdout.write(s); },
  err: (s) => { process.stderr.write(s); },
};

/** Commander settings every command gets: output through `io`, errors prefixed `[name]`, no process.exit. */
export function applyCliSettings(cmd: Command, name: string, io: CliIo): Command {
  return cmd
    .exitOverride()
    .showHelpAfterError(`(run with --help for usage)`)
    .configureOutput({
      writeOut: (s) => io.out(s),
      writeErr: (s) => io.err(s),
      outputError: (s, write) => write(`[${name}] ${s.replace(/^error: /, '')}`),
    });
}

/** Exit status for an error thrown while parsing or running: 0 after --help, 2 for bad arguments. */
export function exitCodeOf(e: unknown, io: CliIo): number {
  if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2; // commander already printed it
  io.err(`${e instanceof Error ? e.message : String(e)}\n`);
  return 2;
}

/** Parser for an integer option with a lower bound. */
export function intAtLeast(min: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n) || n < min) throw new InvalidArgumentError(`It must be an integer >= ${min}.`);
    return n;
  };
}

/** Parser for a finite number option. */
export function finiteNumber(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('It must be a finite number.');
  return n;
}

/** Parser for a positive finite number option. */
export function positiveNumber(v: string): number {
  const n = finiteNumber(v);
  if (n <= 0) throw new InvalidArgumentError('It must be > 0.');
  return n;
}

/** Parses `argv` (options and operands only, no node/script) with `cmd`; throws `[name] ...` instead of printing. */
export function parseOrThrow(cmd: Command, name: string, argv: string[]): void {
  cmd.exitOverride().configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
  try {
    cmd.parse(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) throw new Error(`[${name}] ${e.message.replace(/^error: /, '')}`);
    throw e;
  }
}
