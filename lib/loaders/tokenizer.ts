/**
 * `tokenizer.json` (+ `tokenizer_config.json`) of a checkpoint folder through Hugging Face's
 * pure-JS `@huggingface/tokenizers` (no network, no native code).
 */
import * as fs from 'node:fs';
import { AttentionRopeError, check } from '../errors.js';
import { CHECKPOINT_LIMITS, confinedPath, readJsonObject, readLimitedFile } from './checkpoint_files.js';
import { parseJsonText } from './limits.js';

const W = 'loadTokenizer';

/** The part of a tokenizer the generator and CLI use. */
export interface HfTokenizer {
  encode(text: string, addSpecialTokens?: boolean): number[];
  decode(ids: readonly number[], skipSpecialTokens?: boolean): string;
}

/**
 * Loads the folder's tokenizer, or null when it has no `tokenizer.json`.
 *
 * @example
 * const tok = await loadTokenizer('path/to/checkpoint');
 * tok?.encode('Hello world'); // [9906, 1917]
 */
export async function loadTokenizer(dir: string): Promise<HfTokenizer | null> {
  const file = confinedPath(dir, 'tokenizer.json', W, 'tokenizer.json');
  if (!fs.existsSync(file)) return null;
  const json = parseJsonText(readLimitedFile(file, W, CHECKPOINT_LIMITS.tokenizerFile).toString('utf8'), `'${file}'`, W);
  check(typeof json === 'object' && json !== null && !Array.isArray(json), W, () => `'${file}' must hold a JSON object`);
  const cfgFile = confinedPath(dir, 'tokenizer_config.json', W, 'tokenizer_config.json');
  const config = fs.existsSync(cfgFile) ? readJsonObject(cfgFile, W) : {};
  const { Tokenizer } = await import('@huggingface/tokenizers');
  let tok: InstanceType<typeof Tokenizer>;
  try {
    tok = new Tokenizer(json as object, config);
  } catch (e) {
    throw new AttentionRopeError(`[${W}] '${file}' is not a tokenizer this reader understands: ${String((e as Error)?.message ?? e).slice(0, 300)}`);
  }
  return {
    encode: (text, addSpecialTokens = true) => tok.encode(text, { add_special_tokens: addSpecialTokens }).ids,
    decode: (ids, skipSpecialTokens = false) => tok.decode([...ids], { skip_special_tokens: skipSpecialTokens }),
  };
}
