import { sql, type SQL } from "drizzle-orm";
import { rowsOf, type Db } from "../db/client.ts";
import { dateFromMs, num, numOrNull } from "./format.ts";
import { at } from "./sql-params.ts";

/**
 * The overview's numbers, each one aggregate query over a bounded time range (the last hour, day or week), so the
 * page costs the same however long Parley has run.
 */

export interface CallStats {
  calls: number;
  errors: number;
  p50Ms: number | null;
  p95Ms: number | null;
  costUsd: number;
  tokensIn: number;
  tokensOut: number;
}

export interface ProviderActivity {
  provider: string;
  calls: number;
  failures: number;
  lastOkAt: Date | null;
  lastErrorAt: Date | null;
  lastError: string | null;
}

export interface OverviewStats {
  messages: { hour: number; day: number };
  /** Incoming messages the database refused and the inbox set aside (inbox_dead_letters). */
  setAside: { hour: number; day: number };
  calls: { hour: CallStats; day: CallStats };
  /** Messages (both roles) per hour for the last 24 hours, oldest first. */
  perHour: Array<{ start: Date; count: number }>;
  /** Per provider, over the last 7 days. */
  providers: ProviderActivity[];
}

const HOUR = 60 * 60 * 1000;

export async function loadOverview(db: Db, now: Date): Promise<OverviewStats> {
  const hourAgo = at(new Date(now.getTime() - HOUR));
  const dayAgo = at(new Date(now.getTime() - 24 * HOUR));
  const weekAgo = at(new Date(now.getTime() - 7 * 24 * HOUR));
  const firstHour = Math.floor(now.getTime() / HOUR) - 23;

  const [messageRows, hourCalls, dayCalls, hourRows, providerRows, setAsideRows] = await Promise.all([
    db.execute(sql`
      select count(*) filter (where created_at >= ${hourAgo})::int as hour, count(*)::int as day
      from messages where created_at >= ${dayAgo}`),
    callStats(db, hourAgo),
    callStats(db, dayAgo),
    db.execute(sql`
      select floor(extract(epoch from created_at) / 3600)::int as h, count(*)::int as n
      from messages where created_at >= ${at(new Date(firstHour * HOUR))}
      group by 1`),
    db.execute(sql`
      select provider,
        count(*)::int as calls,
        count(*) filter (where not ok)::int as failures,
        (extract(epoch from max(started_at) filter (where ok)) * 1000)::float8 as last_ok_ms,
        (extract(epoch from max(started_at) filter (where not ok)) * 1000)::float8 as last_error_ms,
        (array_agg(error order by started_at desc) filter (where not ok))[1] as last_error
      from model_calls where started_at >= ${weekAgo}
      group by provider order by provider`),
    db.execute(sql`
      select count(*) filter (where received_at >= ${hourAgo})::int as hour, count(*)::int as day
      from inbox_dead_letters where received_at >= ${dayAgo}`),
  ]);

  const messages = rowsOf<{ hour: unknown; day: unknown }>(messageRows)[0];
  const setAside = rowsOf<{ hour: unknown; day: unknown }>(setAsideRows)[0];
  const counts = new Map(rowsOf<{ h: unknown; n: unknown }>(hourRows).map((r) => [num(r.h), num(r.n)]));
  return {
    messages: { hour: num(messages?.hour), day: num(messages?.day) },
    setAside: { hour: num(setAside?.hour), day: num(setAside?.day) },
    calls: { hour: hourCalls, day: dayCalls },
    perHour: Array.from({ length: 24 }, (_, i) => ({
      start: new Date((firstHour + i) * HOUR),
      count: counts.get(firstHour + i) ?? 0,
    })),
    providers: rowsOf<Record<string, unknown>>(providerRows).map((r) => ({
      provider: String(r.provider),
      calls: num(r.calls),
      failures: num(r.failures),
      lastOkAt: dateFromMs(r.last_ok_ms),
      lastErrorAt: dateFromMs(r.last_error_ms),
      lastError: typeof r.last_error === "string" ? r.last_error : null,
    })),
  };
}

async function callStats(db: Db, since: SQL): Promise<CallStats> {
  const rows = rowsOf<Record<string, unknown>>(
    await db.execute(sql`
      select count(*)::int as calls,
        count(*) filter (where not ok)::int as errors,
        (percentile_cont(0.5) within group (order by latency_ms) filter (where ok))::float8 as p50,
        (percentile_cont(0.95) within group (order by latency_ms) filter (where ok))::float8 as p95,
        coalesce(sum(cost_usd) filter (where provider <> 'parley'), 0)::float8 as cost,
        coalesce(sum(tokens_in) filter (where provider <> 'parley'), 0)::float8 as tokens_in,
        coalesce(sum(tokens_out) filter (where provider <> 'parley'), 0)::float8 as tokens_out
      from model_calls where started_at >= ${since}`),
  );
  const r = rows[0] ?? {};
  return {
    calls: num(r.calls),
    errors: num(r.errors),
    p50Ms: numOrNull(r.p50),
    p95Ms: numOrNull(r.p95),
    costUsd: num(r.cost),
    tokensIn: num(r.tokens_in),
    tokensOut: num(r.tokens_out),
  };
}
