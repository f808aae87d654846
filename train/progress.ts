/** A one-line progress bar on stderr (redrawn in place on a terminal, a line every 10% otherwise). */
export class ProgressBar {
  private readonly start = Date.now();
  private lastPct = -1;

  constructor(private readonly total: number, private readonly width = 28) {}

  update(done: number, fields: Record<string, string>): void {
    const frac = done / this.total;
    const filled = Math.round(frac * this.width);
    const elapsed = (Date.now() - this.start) / 1000;
    const eta = done > 0 ? (elapsed / done) * (this.total - done) : 0;
    const extras = Object.entries(fields).map(([k, v]) => `${k} ${v}`).join('  ');
    const line = `[${'#'.repeat(filled)}${'.'.repeat(this.width - filled)}] ${done}/${this.total}  ${extras}  ${elapsed.toFixed(0)}s (eta ${eta.toFixed(0)}s)`;
    if (process.stderr.isTTY) process.stderr.write(`\r${line}\x1b[K${done === this.total ? '\n' : ''}`);
    else {
      const pct = Math.floor(frac * 10);
      if (pct !== this.lastPct || done === this.total) { this.lastPct = pct; process.stderr.write(`${line}\n`); }
    }
  }
}
