/**
 * Writing a Hugging Face checkpoint folder (Node: file system), from the exporter in export.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { DecoderForCausalLM } from './decoder_lm.js';
import { writeSafetensors } from '../lib/loaders/safetensors.js';
import { exportHfWeights } from './export.js';

/**
 * Writes `config.json` and `model.safetensors` into `dir` (created if missing).
 *
 * @example
 * saveHfCheckpoint(model, 'out/finetuned', hfConfig);
 * const { model: again } = await loadPretrained('out/finetuned');
 */
export function saveHfCheckpoint(model: DecoderForCausalLM, dir: string, hfConfig: Record<string, unknown>): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hfConfig, null, 2));
  fs.writeFileSync(path.join(dir, 'model.safetensors'), writeSafetensors(exportHfWeights(model), { format: 'pt' }));
}

