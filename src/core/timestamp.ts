/**
 * A platform's message time, read once for every channel. Platforms send seconds (Telegram, WhatsApp) or
 * milliseconds (Messenger) since the epoch; whatever else arrives there (a negative, zero, fractional overflow, a
 * number past what a Date can hold, or a time more than a day ahead of ours) is not a time Parley can order by or
 * measure a reply window from, so `now` stands in for it.
 */
const MS_PER_DAY = 86_400_000;

export function platformTime(value: unknown, unit: "s" | "ms", now: Date): Date {
  const count = typeof value === "string" && /^\d{1,15}$/.test(value) ? Number(value) : value;
  if (typeof count !== "number" || !Number.isFinite(count)) return now;
  const ms = Math.trunc(unit === "s" ? count * 1000 : count);
  return ms <= 0 || ms > now.getTime() + MS_PER_DAY ? now : new Date(ms);
}
