/**
 * A tiny static server on 127.0.0.1 (a random free port) for the browser spec: each route maps a
 * URL prefix to a folder, or a path to a fixed body. Only GET of files inside those folders; idle
 * connections time out, and close() ends every open connection, so a test never hangs on it.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

/** `headers`: extra response headers of a fixed body (e.g. COOP/COEP to make that page cross-origin isolated). */
export type Route = { prefix: string; dir: string } | { path: string; body: string; type: string; headers?: Record<string, string> };

export interface StaticServer { url: string; requests: number; close(): Promise<void> }

const TYPES: Record<string, string> = {
  '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json', '.wasm': 'application/wasm',
};

function resolveFile(routes: Route[], urlPath: string): { file?: string; body?: string; type: string; headers?: Record<string, string> } | null {
  for (const r of routes) {
    if ('body' in r) {
      if (urlPath === r.path) return { body: r.body, type: r.type, headers: r.headers };
      continue;
    }
    if (!urlPath.startsWith(r.prefix)) continue;
    const file = path.resolve(r.dir, '.' + decodeURIComponent(urlPath.slice(r.prefix.length - 1)));
    if (!file.startsWith(path.resolve(r.dir) + path.sep)) return null;   // no escaping the folder
    return { file, type: TYPES[path.extname(file)] ?? 'application/octet-stream' };
  }
  return null;
}

export async function serveStatic(routes: Route[]): Promise<StaticServer> {
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests++;
    const urlPath = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    const hit = req.method === 'GET' ? resolveFile(routes, urlPath) : null;
    if (hit?.body !== undefined) {
      res.writeHead(200, { 'content-type': hit.type, 'cache-control': 'no-store', ...hit.headers }).end(hit.body);
      return;
    }
    if (!hit?.file || !fs.existsSync(hit.file) || !fs.statSync(hit.file).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${urlPath}`);
      return;
    }
    res.writeHead(200, { 'content-type': hit.type, 'cache-control': 'no-store' });
    fs.createReadStream(hit.file).pipe(res);
  });
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 2_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get requests() { return requests; },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
