/** How numbers, times and money read on the admin pages. All times are shown in UTC. */

export function formatTime(value: Date | null | undefined): string {
  if (!value || Number.isNaN(value.getTime())) return "—";
  return `${value.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

export function formatCount(value: number | null | undefined): string {
  return value === null || value === undefined ? "—" : Math.round(value).toLocaleString("en");
}

export function formatMs(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  if (value < 1000) return `${Math.round(value)} ms`;
  return `${(value / 1000).toFixed(value < 10_000 ? 2 : 1)} s`;
}

export function formatUsd(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  if (value === 0) return "$0";
  // Three significant digits below a dollar ($0.0118, $0.00220), cents above.
  if (value < 1) return `$${value.toPrecision(3)}`;
  return `$${value.toFixed(2)}`;
}

export function formatPercent(part: number, whole: number): string {
  if (whole === 0) return "—";
  const pct = (part / whole) * 100;
  return `${pct < 10 && pct > 0 ? pct.toFixed(1) : Math.round(pct)} %`;
}

export function formatBytes(value: number): string {
  if (value < 1024) return `${value} B`;
  if (value < 1024 * 1024) return `${(value / 1024).toFixed(1)} KB`;
  return `${(value / 1024 / 1024).toFixed(1)} MB`;
}

/** A number of milliseconds since the epoch from SQL (`extract(epoch …) * 1000`), as a Date. */
export function dateFromMs(value: unknown): Date | null {
  if (value === null || value === undefined) return null;
  const ms = typeof value === "number" ? value : Number(value);
  return Number.isFinite(ms) ? new Date(ms) : null;
}

export function num(value: unknown): number {
  const n = typeof value === "number" ? value : Number(value ?? 0);
  return Number.isFinite(n) ? n : 0;
}

export function numOrNull(value: unknown): number | null {
  if (value === null || value === undefined) return null;
  const n = typeof value === "number" ? value : Number(value);
  return Number.isFinite(n) ? n : null;
}
