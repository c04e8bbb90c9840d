import type { Sample } from "./load.ts";
import { percentile } from "./load.ts";

/** The figures of one program (Parley or the floor) in one load scenario, and how they are printed. */

export interface LoadFigures {
  messages: number;
  messagesPerSecond: number;
  /** Reply time minus the model's configured latency. */
  addedP50Ms: number;
  addedP99Ms: number;
  firstVisibleP50Ms: number;
  firstVisibleP99Ms: number;
  cpuMsPerMessage: number;
  /** Peak resident memory during the measured phase (process and children). */
  peakRssMb: number;
  /** Peak resident memory from start-up to the measured phase (tsx compiling the sources included). */
  peakRssStartupMb?: number;
}

export function figuresOf(args: { samples: Sample[]; wallMs: number; modelMs: number; cpuMs: number; peakRssBytes: number }): LoadFigures {
  const { samples, modelMs } = args;
  const added = samples.map((s) => s.replyMs - modelMs);
  const first = samples.map((s) => s.firstVisibleMs);
  return {
    messages: samples.length,
    messagesPerSecond: round((samples.length * 1000) / args.wallMs, 2),
    addedP50Ms: round(percentile(added, 50), 1),
    addedP99Ms: round(percentile(added, 99), 1),
    firstVisibleP50Ms: round(percentile(first, 50), 1),
    firstVisibleP99Ms: round(percentile(first, 99), 1),
    cpuMsPerMessage: round(args.cpuMs / Math.max(1, samples.length), 2),
    peakRssMb: round(args.peakRssBytes / 1024 / 1024, 1),
  };
}

export const FIGURE_LABELS: Record<keyof LoadFigures, string> = {
  messages: "messages measured",
  messagesPerSecond: "messages per second",
  addedP50Ms: "added latency p50 (ms)",
  addedP99Ms: "added latency p99 (ms)",
  firstVisibleP50Ms: "first visible text p50 (ms)",
  firstVisibleP99Ms: "first visible text p99 (ms)",
  cpuMsPerMessage: "CPU per message (ms)",
  peakRssMb: "peak RSS, measured phase (MB)",
  peakRssStartupMb: "peak RSS, start-up and warm-up (MB)",
};

export function ratio(a: number, b: number): number {
  return b > 0 ? round(a / b, 2) : Number.NaN;
}

export function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** A Markdown table (it reads well in a terminal too). */
export function markdownTable(header: string[], rows: Array<Array<string | number>>): string {
  const cells = [header, ...rows.map((row) => row.map((cell) => (typeof cell === "number" ? formatNumber(cell) : cell)))];
  const widths = header.map((_, c) => Math.max(...cells.map((row) => String(row[c] ?? "").length)));
  const line = (row: Array<string | number>) => `| ${row.map((cell, c) => String(cell).padEnd(widths[c]!)).join(" | ")} |`;
  return [line(cells[0]!), `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`, ...cells.slice(1).map(line)].join("\n");
}

function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return "–";
  return Math.abs(value) >= 100 ? String(Math.round(value)) : String(value);
}
