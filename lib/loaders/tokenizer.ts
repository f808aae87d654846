/**
 * `tokenizer.json` (+ `tokenizer_config.json`) of a checkpoint folder through Hugging Face's
 * pure-JS `@huggingface/tokenizers` (no network, no native code).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

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
  const file = path.join(dir, 'tokenizer.json');
  if (!fs.existsSync(file)) return null;
  const cfgFile = path.join(dir, 'tokenizer_config.json');
  const json = JSON.parse(fs.readFileSync(file, 'utf8')) as object;
  const config = fs.existsSync(cfgFile) ? (JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as object) : {};
  const { Tokenizer } = await import('@huggingface/tokenizers');
  const tok = new Tokenizer(json, config);
  return {
    encode: (text, addSpecialTokens = true) => tok.encode(text, { add_special_tokens: addSpecialTokens }).ids,
    decode: (ids, skipSpecialTokens = false) => tok.decode([...ids], { skip_special_tokens: skipSpecialTokens }),
  };
}
