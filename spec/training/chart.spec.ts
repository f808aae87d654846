/** The main job's chart: ECharts option -> SVG (server-side) -> PNG (resvg), with the labels a reader needs. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type ChartData, findChartFonts, formatLoss, lossChartSvg, movingAverage, writeLossChart } from '../../train/chart';

const PNG_SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

function data(steps: number): ChartData {
  const losses = Array.from({ length: steps }, (_, i) => 2.5 * Math.exp(-i / 20) + 0.01);
  const accuracies = Array.from({ length: steps }, (_, i) => 1 - 0.9 * Math.exp(-i / 15));
  const heldOut = [10, 20, 30, 40].filter((s) => s <= steps).map((step) => ({ step, loss: losses[step - 1] * 1.1, accuracy: accuracies[step - 1] }));
  return { title: 'reverse strings', losses, accuracies, heldOut, exactMatch: { value: 0.986, correct: 493, total: 500 }, smoothing: 5 };
}

describe('loss chart', () => {
  it('moving average: trailing window, shorter at the start; losses keep 3 digits when small', () => {
    expect(movingAverage([1, 2, 3, 4, 5], 2)).toEqual([1, 1.5, 2.5, 3.5, 4.5]);
    expect(movingAverage([4], 20)).toEqual([4]);
    expect([formatLoss(2.5), formatLoss(0.0123456), formatLoss(0.0000941), formatLoss(0)]).toEqual(['2.5000', '0.0123', '9.41e-5', '0.0000']);
  });

  it('SVG has the title, axis titles, every legend entry and the exact match', () => {
    const svg = lossChartSvg(data(40));
    expect(svg.startsWith('<svg')).toBe(true);
    for (const text of ['step', 'loss (cross-entropy, log scale)', 'accuracy (%)', 'train loss (per step)', 'train loss (5-step mean)',
      'held-out loss', 'train token accuracy (5-step mean)', 'held-out token accuracy', 'exact match 98.6%', 'held-out exact match 98.6% (493/500)', 'reverse strings']) {
      expect(svg).toContain(text);
    }
    expect(svg).toContain('DejaVu Sans');
  });

  it('writes a PNG and the SVG beside it; text is drawn with DejaVu Sans where installed', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chart-'));
    const out = writeLossChart(data(40), path.join(dir, 'sub', 'loss.png'));
    expect(out.svg).toBe(path.join(dir, 'sub', 'loss.svg'));
    const png = fs.readFileSync(out.png);
    expect(Array.from(png.subarray(0, 8))).toEqual(PNG_SIGNATURE);
    expect(String(png.subarray(12, 16))).toBe('IHDR');
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([1440, 975]); // 960x650 at 1.5x
    expect(fs.readFileSync(out.svg, 'utf8')).toContain('accuracy (%)');
    // the font file is found (setup.sh installs fonts-dejavu-core); without it the chart still renders with system fonts
    if (fs.existsSync('/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf')) expect(findChartFonts()[0]).toMatch(/DejaVuSans\.ttf$/);
  });

  it('a name without .png gets .svg appended for the SVG; no exact match leaves that series out', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chart-'));
    const out = writeLossChart({ ...data(3), exactMatch: null }, path.join(dir, 'chart'));
    expect(out.svg).toBe(path.join(dir, 'chart.svg'));
    const svg = fs.readFileSync(out.svg, 'utf8');
    expect(svg).not.toContain('exact match');
    expect(Array.from(fs.readFileSync(out.png).subarray(0, 8))).toEqual(PNG_SIGNATURE);
  });
});
