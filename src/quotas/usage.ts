import { sql } from "drizzle-orm";
import { rowsOf, type Db } from "../db/client.ts";

/**
 * A user's usage over a window, counted in the database so that it holds across processes and restarts. Tokens and
 * cost are summed over the calls that reached a provider: a contemplation's own row (provider "parley") carries
 * its agents' and synthesis' totals and is left out, so a contemplation counts as its N+1 calls, once.
 */

export interface ModeUsage {
  calls: number;
  tokens: number;
  costUsd: number;
}

export interface Usage extends ModeUsage {
  /** By mode (instant, thinking, contemplating; "other" for summaries). */
  byMode: Record<string, ModeUsage>;
}

export const NO_USAGE: Usage = { calls: 0, tokens: 0, costUsd: 0, byMode: {} };

/** Calls made for `user` since `since`; `exceptInboxId` leaves out the message being decided on (a retry's own calls). */
export async function usageSince(db: Db, user: string, since: Date, exceptInboxId?: number): Promise<Usage> {
  const except = exceptInboxId === undefined ? sql`` : sql`and inbox_id is distinct from ${exceptInboxId}`;
  const rows = rowsOf<{ mode: string; calls: unknown; tokens: unknown; cost: unknown }>(
    await db.execute(sql`
      select coalesce(mode, 'other') as mode, count(*)::int as calls,
        coalesce(sum(coalesce(tokens_in, 0) + coalesce(tokens_out, 0)), 0)::float8 as tokens,
        coalesce(sum(cost_usd), 0)::float8 as cost
      from model_calls
      where user_key = ${user} and started_at >= ${since} and provider <> 'parley' ${except}
      group by 1`),
  );
  const usage: Usage = { calls: 0, tokens: 0, costUsd: 0, byMode: {} };
  for (const r of rows) {
    const mode = { calls: Number(r.calls), tokens: Number(r.tokens), costUsd: Number(r.cost) };
    usage.byMode[r.mode] = mode;
    usage.calls += mode.calls;
    usage.tokens += mode.tokens;
    usage.costUsd += mode.costUsd;
  }
  return usage;
}

/** Contemplations started for `user` since `since` (their parent rows), and when the oldest of them started. */
export async function contemplationsSince(db: Db, user: string, since: Date, exceptInboxId?: number): Promise<{ count: number; oldest: Date | null }> {
  const except = exceptInboxId === undefined ? sql`` : sql`and inbox_id is distinct from ${exceptInboxId}`;
  const [row] = rowsOf<{ n: unknown; oldest: unknown }>(
    await db.execute(sql`
      select count(*)::int as n, min(started_at) as oldest from model_calls
      where user_key = ${user} and started_at >= ${since} and mode = 'contemplating' and parent_id is null
        and provider = 'parley' ${except}`),
  );
  return { count: Number(row?.n ?? 0), oldest: toDate(row?.oldest) };
}

/**
 * Messages `user` sent since `since` that were taken in (not refused or ignored), among those stored before inbox row
 * `beforeInboxId`, and when the oldest of them arrived. Earlier rows only: a burst is judged in the order it came.
 */
export async function messagesSince(db: Db, user: string, since: Date, beforeInboxId: number): Promise<{ count: number; oldest: Date | null }> {
  const [row] = rowsOf<{ n: unknown; oldest: unknown }>(
    await db.execute(sql`
      select count(*)::int as n, min(created_at) as oldest from inbox
      where user_key = ${user} and id < ${beforeInboxId} and created_at >= ${since} and state <> 'ignored'`),
  );
  return { count: Number(row?.n ?? 0), oldest: toDate(row?.oldest) };
}

/** Whether `user` was already told `reason` (an ignored inbox row with that error) since `since`. */
export async function toldSince(db: Db, user: string, reason: string, since: Date): Promise<boolean> {
  const [row] = rowsOf<{ told: unknown }>(
    await db.execute(sql`
      select exists (select 1 from inbox where user_key = ${user} and created_at >= ${since} and state = 'ignored'
        and error = ${reason}) as told`),
  );
  return row?.told === true;
}

function toDate(value: unknown): Date | null {
  if (value === null || value === undefined) return null;
  return value instanceof Date ? value : new Date(String(value));
}
