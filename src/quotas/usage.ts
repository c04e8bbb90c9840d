import { and, eq, gte, lt, ne, sql } from "drizzle-orm";
import { rowsOf, type Db } from "../db/client.ts";
import { inbox, modelCalls } from "../db/schema.ts";

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

/** The two counts every message needs, prepared once per database (not rebuilt nor re-planned each time). */
const prepared = new WeakMap<Db, ReturnType<typeof prepareUsageQueries>>();
function prepareUsageQueries(db: Db) {
  const p = sql.placeholder;
  return {
    usage: db
      .select({
        mode: sql<string>`coalesce(${modelCalls.mode}, 'other')`,
        calls: sql<number>`count(*)::int`,
        tokens: sql<number>`coalesce(sum(coalesce(${modelCalls.tokensIn}, 0) + coalesce(${modelCalls.tokensOut}, 0)), 0)::float8`,
        cost: sql<number>`coalesce(sum(${modelCalls.costUsd}), 0)::float8`,
      })
      .from(modelCalls)
      .where(
        and(
          eq(modelCalls.userKey, p("user")),
          gte(modelCalls.startedAt, p("since")),
          ne(modelCalls.provider, "parley"),
          sql`(${p("except")}::bigint is null or ${modelCalls.inboxId} is distinct from ${p("except")}::bigint)`,
        ),
      )
      .groupBy(sql`1`)
      .prepare("parley_usage_since"),
    messages: db
      .select({ n: sql<number>`count(*)::int`, oldest: sql<unknown>`min(${inbox.createdAt})` })
      .from(inbox)
      .where(and(eq(inbox.userKey, p("user")), lt(inbox.id, p("before")), gte(inbox.createdAt, p("since")), ne(inbox.state, "ignored")))
      .prepare("parley_messages_since"),
  };
}
const queriesOf = (db: Db) => {
  let queries = prepared.get(db);
  if (!queries) prepared.set(db, (queries = prepareUsageQueries(db)));
  return queries;
};

/** Calls made for `user` since `since`; `exceptInboxId` leaves out the message being decided on (a retry's own calls). */
export async function usageSince(db: Db, user: string, since: Date, exceptInboxId?: number): Promise<Usage> {
  const rows = await queriesOf(db).usage.execute({ user, since, except: exceptInboxId ?? null });
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
  const [row] = await queriesOf(db).messages.execute({ user, since, before: beforeInboxId });
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
