/**
 * Browser stand-in for the Node built-ins the library imports (node:fs, node:path, node:module,
 * node:url). browser/bundle.cjs points those imports here. Path helpers work on '/'-separated
 * strings; anything that would touch a file system throws, naming the function, so a browser
 * caller learns at once that e.g. `loadPretrained(dir)` needs Node (pass bytes instead).
 */
function noFs(name: string): never {
  throw new Error(`[browser] ${name} needs a file system, which a browser does not have; pass the bytes instead`);
}

// node:fs
export function existsSync(_p: string): boolean { return false; }
export function readFileSync(p: string): never { return noFs(`fs.readFileSync('${p}')`); }
export function readdirSync(p: string): never { return noFs(`fs.readdirSync('${p}')`); }
export function statSync(p: string): never { return noFs(`fs.statSync('${p}')`); }
export function openSync(p: string): never { return noFs(`fs.openSync('${p}')`); }
export function readSync(): never { return noFs('fs.readSync'); }
export function fstatSync(): never { return noFs('fs.fstatSync'); }
export function closeSync(): void { /* nothing is ever open */ }
export function realpathSync(p: string): never { return noFs(`fs.realpathSync('${p}')`); }
export const constants = { O_RDONLY: 0, O_NONBLOCK: 0 };
export function writeFileSync(p: string): never { return noFs(`fs.writeFileSync('${p}')`); }
export function mkdirSync(p: string): never { return noFs(`fs.mkdirSync('${p}')`); }
export const promises = { readFile: async (p: string) => noFs(`fs.promises.readFile('${p}')`) };

// node:path (posix)
export const sep = '/';
function normalizeParts(parts: string[]): string[] {
  const out: string[] = [];
  for (const s of parts) {
    if (s === '' || s === '.') continue;
    if (s === '..' && out.length && out[out.length - 1] !== '..') out.pop(); else out.push(s);
  }
  return out;
}
export function join(...p: string[]): string {
  const s = p.filter((x) => x !== '').join('/');
  const abs = s.startsWith('/');
  return (abs ? '/' : '') + normalizeParts(s.split('/')).join('/') || (abs ? '/' : '.');
}
export function resolve(...p: string[]): string {
  let s = '';
  for (const x of p) s = x.startsWith('/') ? x : `${s}/${x}`;
  return join('/', s);
}
export function dirname(p: string): string {
  const i = p.replace(/\/+$/, '').lastIndexOf('/');
  return i < 0 ? '.' : i === 0 ? '/' : p.slice(0, i);
}
export function basename(p: string, ext?: string): string {
  const b = p.replace(/\/+$/, '').split('/').pop() ?? '';
  return ext && b.endsWith(ext) ? b.slice(0, -ext.length) : b;
}
export function extname(p: string): string {
  const b = basename(p);
  const i = b.lastIndexOf('.');
  return i <= 0 ? '' : b.slice(i);
}
export function relative(from: string, to: string): string { return to.startsWith(from) ? to.slice(from.length).replace(/^\//, '') : to; }
export function isAbsolute(p: string): boolean { return p.startsWith('/'); }
export const posix = { sep, join, resolve, dirname, basename, extname, relative, isAbsolute };

// node:module
export function createRequire(_from: string): (id: string) => never {
  return (id: string) => noFs(`require('${id}')`);
}

// node:url
export function fileURLToPath(u: string | URL): string { return new URL(String(u)).pathname; }
export function pathToFileURL(p: string): URL { return new URL(`file://${p}`); }

export default {
  existsSync, readFileSync, readdirSync, statSync, openSync, readSync, fstatSync, closeSync, realpathSync, constants, writeFileSync, mkdirSync, promises,
  sep, join, resolve, dirname, basename, extname, relative, isAbsolute, posix, createRequire, fileURLToPath, pathToFileURL,
};
