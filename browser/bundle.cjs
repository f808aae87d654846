/**
 * Bundles a browser entry (TypeScript, importing lib/ like a user would) into one ES module with
 * plain esbuild (`platform: 'browser'`, no plugins, no stubs): the main entry (lib/index.ts)
 * reaches no Node built-in, so a bundle that needs one fails here (spec/browser/main_entry_bundle.spec.ts).
 * The native CPU addon is installed only by the Node entry, so the cpu backend runs the
 * pure-TypeScript kernels; webgpu and webgl come from tfjs's own packages.
 *
 *   node browser/bundle.cjs browser/example.ts /tmp/tfjs-attn-example   # writes example.js there
 */
'use strict';
const path = require('node:path');

/**
 * Bundles each entry to `<outdir>/<entry basename>.js`; resolves to { files, warnings, ms }.
 * Throws with esbuild's messages when the build fails.
 */
async function bundleForBrowser(entries, outdir, opts = {}) {
  const esbuild = require('esbuild');
  const t0 = Date.now();
  const list = Array.isArray(entries) ? entries : [entries];
  const r = await esbuild.build({
    entryPoints: list,
    outdir,
    entryNames: '[name]',
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: opts.minify ?? false,
    sourcemap: opts.sourcemap ?? false,
    logLevel: 'silent',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  const files = list.map((e) => path.join(outdir, path.basename(e).replace(/\.[cm]?[tj]s$/, '') + '.js'));
  return { files, warnings: r.warnings.map((w) => w.text), ms: Date.now() - t0 };
}

module.exports = { bundleForBrowser };

if (require.main === module) {
  const args = process.argv.slice(2);
  if (args.length < 2) {
    console.error('usage: node browser/bundle.cjs <entry.ts>... <outdir>');
    process.exit(2);
  }
  const outdir = path.resolve(args.pop());
  bundleForBrowser(args.map((a) => path.resolve(a)), outdir).then((r) => {
    for (const w of r.warnings) console.warn(`[bundle] warning: ${w}`);
    console.log(`[bundle] ${r.files.join(', ')} in ${r.ms} ms`);
  }, (e) => { console.error(String(e.message ?? e)); process.exit(1); });
}
