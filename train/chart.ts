/**
 * The main job's training chart: an Apache ECharts option rendered server-side to SVG (no
 * browser, no DOM), then to PNG by resvg with DejaVu Sans loaded from its file.
 * Top panel: train loss per step (raw and smoothed) and held-out loss, log scale. Bottom panel:
 * train token accuracy (smoothed), held-out token accuracy, and the held-out exact match.
 *
 * Versions that lost: a hand-written PNG encoder with a 5x7 pixel font (train/png.ts): no axis
 * values, no legend, no held-out curve; every label had to be placed by hand.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as echarts from 'echarts';
import { Resvg } from '@resvg/resvg-js';

export interface ChartData {
  /** Title line, e.g. the task and the model. */
  title: string;
  /** Train loss and token accuracy (0..1) per step, step i at index i. */
  losses: number[];
  accuracies: number[];
  /** Held-out loss and token accuracy measured at some steps (1-based step numbers). */
  heldOut: { step: number; loss: number; accuracy: number }[];
  /** Held-out exact match (0..1) after training, with its counts. */
  exactMatch: { value: number; correct: number; total: number } | null;
  /** Window of the moving average. */
  smoothing: number;
}

/** Where Debian (fonts-dejavu-core), Fedora and Arch put DejaVu Sans. */
const FONT_DIRS = ['/usr/share/fonts/truetype/dejavu', '/usr/share/fonts/dejavu-sans-fonts', '/usr/share/fonts/dejavu', '/usr/share/fonts/TTF'];
const FONT = 'DejaVu Sans';
const LOSS_RAW = 'train loss (per step)', HELD_LOSS = 'held-out loss';
const HELD_ACC = 'held-out token accuracy', EXACT = 'held-out exact match (generated answers)';

/** A loss for a label: 4 decimals, or 3 significant digits below 0.01. */
export function formatLoss(x: number): string {
  return x >= 0.01 || x === 0 ? x.toFixed(4) : x.toExponential(2);
}

/** Trailing moving average over `window` points. */
export function movingAverage(xs: number[], window: number): number[] {
  let sum = 0;
  return xs.map((x, i) => {
    sum += x - (i >= window ? xs[i - window] : 0);
    return sum / Math.min(i + 1, window);
  });
}

/** The ECharts option for `d` (for other renderers: `echarts.init(el).setOption(lossChartOption(d))` in a page). */
export function lossChartOption(d: ChartData): Record<string, unknown> {
  const steps = d.losses.length;
  const pts = (ys: number[]) => ys.map((y, i) => [i + 1, y]);
  const pct = (ys: number[]) => ys.map((y) => 100 * y);
  const em = d.exactMatch;
  const subtitle = [`${steps} steps`, `final train loss ${steps ? formatLoss(movingAverage(d.losses, d.smoothing)[steps - 1]) : 'n/a'} (smoothed)`,
    d.heldOut.length ? `held-out loss ${formatLoss(d.heldOut[d.heldOut.length - 1].loss)}` : null,
    em ? `held-out exact match ${(100 * em.value).toFixed(1)}% (${em.correct}/${em.total})` : null].filter(Boolean).join('   ·   ');
  const lossMean = `train loss (${d.smoothing}-step mean)`, accMean = `train token accuracy (${d.smoothing}-step mean)`;
  const axisName = { nameLocation: 'middle', nameTextStyle: { fontSize: 13, color: '#333' } };
  const xAxis = (gridIndex: number) => ({ type: 'value', gridIndex, min: 0, max: steps, name: 'step', nameGap: 26, ...axisName });
  return {
    animation: false, backgroundColor: '#ffffff', textStyle: { fontFamily: FONT },
    title: { text: d.title, subtext: subtitle, left: 'center', textStyle: { fontSize: 16 }, subtextStyle: { fontSize: 12, color: '#444' } },
    // one legend above each panel; wide gaps because server-side text widths are estimates
    legend: [
      { top: 66, left: 80, itemGap: 36, textStyle: { fontSize: 12 }, data: [LOSS_RAW, lossMean, HELD_LOSS] },
      { top: 398, left: 80, itemGap: 36, textStyle: { fontSize: 12 }, data: [accMean, HELD_ACC, ...(em ? [EXACT] : [])] },
    ],
    grid: [{ left: 80, right: 30, top: 100, height: 240 }, { left: 80, right: 30, top: 432, height: 160 }],
    xAxis: [xAxis(0), xAxis(1)],
    yAxis: [
      { type: 'log', gridIndex: 0, name: 'loss (cross-entropy, log scale)', nameGap: 55, ...axisName, axisLabel: { formatter: (v: number) => `${+v.toPrecision(2)}` } },
      { type: 'value', gridIndex: 1, min: 0, max: 100, name: 'accuracy (%)', nameGap: 45, ...axisName },
    ],
    series: [
      { name: LOSS_RAW, type: 'line', xAxisIndex: 0, yAxisIndex: 0, data: pts(d.losses), showSymbol: false, lineStyle: { width: 1, color: '#a9c4ec' }, itemStyle: { color: '#a9c4ec' } },
      { name: lossMean, type: 'line', xAxisIndex: 0, yAxisIndex: 0, data: pts(movingAverage(d.losses, d.smoothing)), showSymbol: false, lineStyle: { width: 2.5, color: '#1f4e9c' }, itemStyle: { color: '#1f4e9c' } },
      { name: HELD_LOSS, type: 'line', xAxisIndex: 0, yAxisIndex: 0, data: d.heldOut.map((h) => [h.step, h.loss]), symbol: 'circle', symbolSize: 6, lineStyle: { width: 2, color: '#d62728', type: 'dashed' }, itemStyle: { color: '#d62728' } },
      { name: accMean, type: 'line', xAxisIndex: 1, yAxisIndex: 1, data: pts(pct(movingAverage(d.accuracies, d.smoothing))), showSymbol: false, lineStyle: { width: 2.5, color: '#e07b10' }, itemStyle: { color: '#e07b10' } },
      { name: HELD_ACC, type: 'line', xAxisIndex: 1, yAxisIndex: 1, data: d.heldOut.map((h) => [h.step, 100 * h.accuracy]), symbol: 'circle', symbolSize: 6, lineStyle: { width: 2, color: '#8c564b', type: 'dashed' }, itemStyle: { color: '#8c564b' } },
      ...(em ? [{
        name: EXACT, type: 'scatter', xAxisIndex: 1, yAxisIndex: 1, data: [[steps, 100 * em.value]], symbol: 'diamond', symbolSize: 14, itemStyle: { color: '#2ca02c' },
        label: { show: true, position: 'bottom', align: 'right', distance: 12, backgroundColor: '#ffffff', padding: [2, 4], fontSize: 13, fontWeight: 'bold', color: '#2ca02c', formatter: `exact match ${(100 * em.value).toFixed(1)}%` },
      }] : []),
    ],
  };
}

/** Renders the chart to an SVG string (ECharts server-side rendering). */
export function lossChartSvg(d: ChartData, width = 960, height = 650): string {
  const chart = echarts.init(null, null, { renderer: 'svg', ssr: true, width, height });
  try {
    chart.setOption(lossChartOption(d));
    return chart.renderToSVGString();
  } finally {
    chart.dispose();
  }
}

/** DejaVu Sans files found on this machine (regular first), or [] when none. */
export function findChartFonts(): string[] {
  for (const dir of FONT_DIRS) {
    const regular = path.join(dir, 'DejaVuSans.ttf');
    if (fs.existsSync(regular)) return [regular, path.join(dir, 'DejaVuSans-Bold.ttf')].filter((f) => fs.existsSync(f));
  }
  return [];
}

/** SVG to PNG through resvg, with DejaVu Sans loaded from its file (system fonts only as a fallback). */
export function svgToPng(svg: string, warn: (s: string) => void = (s) => console.warn(s)): Buffer {
  const fontFiles = findChartFonts();
  if (fontFiles.length === 0) warn(`[chart] DejaVu Sans not found in ${FONT_DIRS.join(', ')} (Debian: apt-get install fonts-dejavu-core); using system fonts`);
  const resvg = new Resvg(svg, {
    background: '#ffffff', fitTo: { mode: 'zoom', value: 1.5 },
    font: { fontFiles, loadSystemFonts: fontFiles.length === 0, defaultFontFamily: FONT, sansSerifFamily: FONT },
  });
  return resvg.render().asPng();
}

/** Writes `pngPath` and the SVG beside it (same name, .svg); returns both paths. */
export function writeLossChart(d: ChartData, pngPath: string): { png: string; svg: string } {
  const svgPath = /\.png$/i.test(pngPath) ? pngPath.replace(/\.png$/i, '.svg') : `${pngPath}.svg`;
  fs.mkdirSync(path.dirname(path.resolve(pngPath)), { recursive: true });
  const svg = lossChartSvg(d);
  fs.writeFileSync(svgPath, svg);
  fs.writeFileSync(pngPath, svgToPng(svg));
  return { png: pngPath, svg: svgPath };
}
