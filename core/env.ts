/**
 * Environment switches. Every switch of this package is `TFJS_ATTENTION_<NAME>`; a few older
 * names still work as aliases (README lists them): `ATTENTION_ROPE_FORCE_COMPOSITE` for
 * `TFJS_ATTENTION_FORCE_COMPOSITE`, `SPEC_BACKENDS`, `SKIP_BROWSER_SPEC` and `BROWSER_SPEC_WEBGPU`
 * for their `TFJS_ATTENTION_` forms. Reads nothing outside Node (no `process` in browsers).
 */

/** The value of `TFJS_ATTENTION_<name>`, else of the first alias that is set, else undefined. */
export function envSwitch(name: string, ...aliases: string[]): string | undefined {
  const env = typeof process !== 'undefined' ? process.env : undefined;
  if (env === undefined) return undefined;
  for (const key of [`TFJS_ATTENTION_${name}`, ...aliases]) {
    const v = env[key];
    if (v !== undefined) return v;
  }
  return undefined;
}
