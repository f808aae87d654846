/**
 * Bundles a browser entry (TypeScript, importing lib/ like a user would) into one ES module with
 * esbuild. Node-only modules are swapped for browser stand-ins in browser/stubs/:
 *   node:fs, node:path, node:module, node:url (and bare fs/path/module/url) -> stubs/node_builtins.ts
 *   lib/util/package_root.js                                        -> stubs/package_root.ts
 *   lib/backends/webgpu_node.js (Dawn addon)                         -> stubs/webgpu_node.ts
 * The native CPU addon is never reached (kernels/cpu/native.ts loads it only under Node), so the
 * cpu backend runs the pure-TypeScript kernels; webgpu and webgl come from tfjs's own packages.
 *
 *   node browser/bundle.cjs browser/example.ts /tmp/tfjs-attn-example   # writes example.js there
 */
'use strict';
const path = require('node:path');

const STUBS = path.join(__dirname, 'stubs');
const NODE_BUILTINS = /^(node:)?(fs|path|module|url|fs\/promises)$/;

/** esbuild plugin: the redirects listed above. */
const browserStubs = {
  name: 'tfjs-attention-rope-browser-stubs',
  setup(build) {
    build.onResolve({ filter: NODE_BUILTINS }, () => ({ path: path.join(STUBS, 'node_builtins.ts') }));
    build.onResolve({ filter: /\/util\/package_root(\.js)?$/ }, () => ({ path: path.join(STUBS, 'package_root.ts') }));
    build.onResolve({ filter: /\/backends\/webgpu_node(\.js)?$/ }, () => ({ path: path.join(STUBS, 'webgpu_node.ts') }));
  },
};

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
    plugins: [browserStubs],
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  const files = list.map((e) => path.join(outdir, path.basename(e).replace(/\.[cm]?[tj]s$/, '') + '.js'));
  return { files, warnings: r.warnings.map((w) => w.text), ms: Date.now() - t0 };
}

module.exports = { bundleForBrowser, browserStubs };

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
