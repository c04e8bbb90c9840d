import { html, type Html } from "./html.ts";

/**
 * A small bar chart as inline SVG, drawn on the server: no script, no inline style (colours come from admin.css
 * through classes), every label escaped. Each bar carries a <title> so hovering shows its value.
 */

export interface Bar {
  label: string;
  value: number;
  /** Shown under the axis when set (e.g. every sixth hour). */
  tick?: string;
}

export function barChart(bars: readonly Bar[], options: { title: string; unit: string }): Html {
  const width = 1100;
  const height = 200;
  const left = 36;
  const right = 12;
  const bottom = 22;
  const top = 10;
  const plotHeight = height - bottom - top;
  const max = Math.max(1, ...bars.map((b) => b.value));
  const scaleMax = niceCeiling(max);
  const slot = (width - left - right) / Math.max(1, bars.length);
  const barWidth = Math.max(2, slot * 0.7);

  const gridLines = [0, 0.5, 1].map((f) => {
    const y = round(top + plotHeight * (1 - f));
    return html`<line class="grid" x1="${left}" x2="${width - right}" y1="${y}" y2="${y}"></line><text class="axis" x="${left - 6}" y="${y + 4}" text-anchor="end">${formatTick(scaleMax * f)}</text>`;
  });

  const rects = bars.map((bar, i) => {
    const h = round((bar.value / scaleMax) * plotHeight);
    const x = round(left + i * slot + (slot - barWidth) / 2);
    const y = round(top + plotHeight - h);
    return html`<g><rect class="bar" x="${x}" y="${y}" width="${round(barWidth)}" height="${Math.max(h, bar.value > 0 ? 1 : 0)}"><title>${bar.label}: ${bar.value} ${options.unit}</title></rect>${
      bar.tick === undefined ? "" : html`<text class="axis" x="${round(x + barWidth / 2)}" y="${height - 6}" text-anchor="middle">${bar.tick}</text>`
    }</g>`;
  });

  return html`<svg class="chart" viewBox="0 0 ${width} ${height}" role="img" aria-label="${options.title}" preserveAspectRatio="xMidYMid meet"><title>${options.title}</title>${gridLines}${rects}</svg>`;
}

function niceCeiling(value: number): number {
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (value <= step * magnitude) return step * magnitude;
  return 10 * magnitude;
}

function formatTick(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
