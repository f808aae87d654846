/**
 * A GPU validation message without the WGSL compiler's warnings: Dawn puts every warning of a
 * shader (e.g. a deprecated builtin on each line) before the error, so a shortened message would
 * show only warnings. Keeps the blocks that are not `:line:col warning:` reports.
 *
 * @example
 * gpuErrorText('Error while parsing WGSL: :3:1 warning: w\n  x\n\n:9:2 error: e\n  y') // 'WGSL: :9:2 error: e\n  y'
 */
export function gpuErrorText(msg: string, max = 4000): string {
  const body = msg.replace('Error while parsing WGSL: ', '');
  const kept = body.split('\n\n').filter((b) => !/^\s*:\d+:\d+ warning:/.test(b));
  return `WGSL: ${kept.join('\n')}`.slice(0, max);
}
