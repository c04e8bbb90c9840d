import type { Request } from "express";

/**
 * Reading query and form parameters defensively: only plain strings count (not arrays or objects that
 * `?a[b]=c` style parsers produce), trimmed and capped in length; anything else is as if absent.
 */

export function queryText(req: Request, name: string, max = 200): string | undefined {
  const value = (req.query as Record<string, unknown>)[name];
  if (typeof value !== "string") return undefined;
  const trimmed = value.trim();
  return trimmed === "" ? undefined : trimmed.slice(0, max);
}

export function bodyText(req: Request, name: string, max = 1024): string | undefined {
  const body = req.body as Record<string, unknown> | undefined;
  const value = body?.[name];
  return typeof value === "string" ? value.slice(0, max) : undefined;
}

export function queryOneOf<T extends string>(req: Request, name: string, allowed: readonly T[]): T | undefined {
  const value = queryText(req, name, 50);
  return value !== undefined && (allowed as readonly string[]).includes(value) ? (value as T) : undefined;
}

export function queryPositiveInt(req: Request, name: string): number | undefined {
  const value = queryText(req, name, 20);
  if (value === undefined || !/^\d{1,15}$/.test(value)) return undefined;
  const n = Number(value);
  return n > 0 ? n : undefined;
}

/** A YYYY-MM-DD date (UTC midnight), or undefined. */
export function queryDate(req: Request, name: string): Date | undefined {
  const value = queryText(req, name, 10);
  if (value === undefined || !/^\d{4}-\d{2}-\d{2}$/.test(value)) return undefined;
  const date = new Date(`${value}T00:00:00.000Z`);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

export function isoDay(date: Date | undefined): string | undefined {
  return date?.toISOString().slice(0, 10);
}

/** A two-number keyset cursor such as `123.45`. */
export function queryCursor(req: Request, name: string): [number, number] | undefined {
  const value = queryText(req, name, 40);
  const match = value?.match(/^(\d{1,15})\.(\d{1,15})$/);
  return match ? [Number(match[1]), Number(match[2])] : undefined;
}

/** A LIKE pattern that matches `text` anywhere, with the wildcards in `text` taken literally (escape '\'). */
export function containsPattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}
