import { and, desc, eq, ilike, inArray, lt, or, sql, type SQL } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { logs } from "../db/schema.ts";
import { LOG_LEVELS, type LogLevelName } from "../observability/log-sink.ts";
import { containsPattern } from "./params.ts";

/** Older log lines from the logs table, newest first, a page at a time (keyset on id). */

export const LOG_PAGE = 100;

export interface LogFilters {
  /** This level and the ones above it. */
  level?: LogLevelName;
  source?: string;
  q?: string;
}

export type LogRow = typeof logs.$inferSelect;

export function levelsFrom(level: LogLevelName | undefined): LogLevelName[] {
  return level === undefined ? [...LOG_LEVELS] : LOG_LEVELS.slice(LOG_LEVELS.indexOf(level));
}

export async function listLogs(db: Db, filters: LogFilters, before: number | undefined): Promise<{ rows: LogRow[]; next?: number }> {
  const where: SQL[] = [];
  if (filters.level && filters.level !== "trace") where.push(inArray(logs.level, levelsFrom(filters.level)));
  if (filters.source) where.push(eq(logs.source, filters.source));
  if (filters.q) {
    const pattern = containsPattern(filters.q);
    where.push(or(ilike(logs.message, pattern), sql`${logs.data}::text ilike ${pattern}`)!);
  }
  if (before !== undefined) where.push(lt(logs.id, before));
  const rows = await db
    .select()
    .from(logs)
    .where(where.length > 0 ? and(...where) : undefined)
    .orderBy(desc(logs.id))
    .limit(LOG_PAGE + 1);
  const page = rows.slice(0, LOG_PAGE);
  return { rows: page, next: rows.length > LOG_PAGE ? page[page.length - 1]?.id : undefined };
}
