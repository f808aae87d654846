/**
 * Golden attention fixtures from a folder (Node: file system); the runner itself
 * (attention_fixture.ts) takes bytes, so browsers run it too (browser/fixtures_page.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { type AttentionFixture, attentionFixtureFromBytes } from './attention_fixture.js';

export function isAttentionFixture(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'config.json')) && fs.existsSync(path.join(dir, 'tensors.safetensors'));
}

export function loadAttentionFixture(dir: string): AttentionFixture {
  const config = fs.readFileSync(path.join(dir, 'config.json'), 'utf8');
  const bytes = new Uint8Array(fs.readFileSync(path.join(dir, 'tensors.safetensors')));
  return attentionFixtureFromBytes(config, bytes, path.basename(dir));
}

