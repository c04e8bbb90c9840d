import { dateFormat } from "../core/date-format.ts";
/**
 * Calendar windows in a time zone (DEFAULT_TIMEZONE): where "today" and "this month" begin for daily quotas and
 * /usage, and when the next day begins. Same answers for the same arguments (the current day of each zone is
 * remembered, not recomputed per message); daylight-saving days are 23 or 25 hours long and handled.
 */

/** The current day of each time zone, since every message asks for it (three formatToParts calls to work out). */
const today = new Map<string, { start: number; end: number }>();

/** The local day `now` falls in, from memory when it is the one remembered for the zone. */
function dayOf(now: Date, timeZone: string): { start: number; end: number } {
  const t = now.getTime();
  const known = today.get(timeZone);
  if (known && t >= known.start && t < known.end) return known;
  const { year, month, day } = localParts(now, timeZone);
  const found = { start: localMidnight(year, month, day, timeZone).getTime(), end: localMidnight(year, month, day + 1, timeZone).getTime() };
  today.set(timeZone, found);
  return found;
}

export function startOfDay(now: Date, timeZone: string): Date {
  return new Date(dayOf(now, timeZone).start);
}

export function startOfNextDay(now: Date, timeZone: string): Date {
  return new Date(dayOf(now, timeZone).end);
}

export function startOfMonth(now: Date, timeZone: string): Date {
  const { year, month } = localParts(now, timeZone);
  return localMidnight(year, month, 1, timeZone);
}

function localParts(at: Date, timeZone: string) {
  const parts = dateFormat("en-US", {
    timeZone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  }).formatToParts(at);
  const get = (type: Intl.DateTimeFormatPartTypes) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  return { year: get("year"), month: get("month"), day: get("day"), hour: get("hour"), minute: get("minute"), second: get("second") };
}

/** How far `timeZone` is ahead of UTC at `at`, in ms. */
function offsetMs(at: Date, timeZone: string): number {
  const p = localParts(at, timeZone);
  const asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return asUtc - Math.floor(at.getTime() / 1000) * 1000;
}

/** 00:00 of the local date (month and day may overflow: Date.UTC carries them). */
function localMidnight(year: number, month: number, day: number, timeZone: string): Date {
  const wall = Date.UTC(year, month - 1, day);
  let t = wall - offsetMs(new Date(wall), timeZone);
  t = wall - offsetMs(new Date(t), timeZone);
  return new Date(t);
}
