/** Size limits and JSON parsing shared by the checkpoint readers (no Node imports: browser-safe). */
import { check } from '../errors.js';

/** Size limits checked before a file is read (bytes). */
export const CHECKPOINT_LIMITS = {
  /** config.json, generation_config.json, tokenizer_config.json, the shard index. */
  jsonFile: 64 * 1024 * 1024,
  /** tokenizer.json (large vocabularies run to tens of MB). */
  tokenizerFile: 512 * 1024 * 1024,
  /** A safetensors JSON header (the format's own limit is 100 MB). */
  safetensorsHeader: 100 * 1024 * 1024,
};

/** Parses JSON text; a syntax error names `label` (the quoted file name) without echoing its bytes. */
export function parseJsonText(text: string, label: string, where: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    const at = /position (\d+)/.exec((e as Error).message);
    const detail = at ? `at character ${at[1]}` : text.trim() === '' ? '(empty)' : `(${(e as Error).name})`;
    return check(false, where, () => `${label} is not valid JSON ${detail}`);
  }
}
