/**
 * Headless Chromium for the browser spec: Debian's `chromium` (scripts/setup-browser.sh), driven
 * by playwright-core. `CHROMIUM_PATH` overrides the executable.
 *
 * Flags: --enable-unsafe-webgpu exposes navigator.gpu on Linux (Chromium finds SwiftShader's
 * Vulkan adapter by itself; measured: the extra Vulkan/ANGLE flags change nothing there, and
 * --use-angle=vulkan loses WebGL 2). WebGPU also needs a secure context, which
 * http://127.0.0.1 is (about:blank and data: URLs are not: navigator.gpu is undefined there).
 */
import * as fs from 'node:fs';
import type { Browser } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** CHROMIUM_EXTRA_ARGS (space-separated) is appended (e.g. '--enable-features=Vulkan --use-angle=swiftshader'). */
export const CHROMIUM_ARGS = [
  '--no-sandbox',                 // root in a container
  '--enable-unsafe-webgpu',
  '--ignore-gpu-blocklist',
  '--enable-unsafe-swiftshader',  // allows SwiftShader WebGL where Chromium would otherwise refuse it
  ...(process.env.CHROMIUM_EXTRA_ARGS ?? '').split(' ').filter(Boolean),
];

/** Null when Chromium is installed, else why not. */
export function chromiumMissing(): string | null {
  return fs.existsSync(CHROMIUM_PATH) ? null : `${CHROMIUM_PATH} not found (run scripts/setup-browser.sh, or set CHROMIUM_PATH)`;
}

export async function launchChromium(timeoutMs = 30_000): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true, timeout: timeoutMs });
}

/** Resolves with `p`, or rejects naming `what` after `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`[browser spec] ${what} timed out after ${ms} ms`)), ms); });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
