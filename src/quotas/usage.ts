import { and, eq, gte, ne, sql, type SQL } from "drizzle-orm";
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

/** The counts every message needs, prepared once per database (not rebuilt nor re-planned each time). */
const prepared = new WeakMap<Db, ReturnType<typeof prepareUsageQueries>>();
function prepareUsageQueries(db: Db) {
  const p = sql.placeholder;
  const admissionMessages = sql`where i.user_key = ${p("user")} and i.id < ${p("inboxId")} and i.created_at >= ${p("minuteSince")}
    and i.state <> 'ignored'`;
  const tokens = sql<number>`coalesce(sum(coalesce(${modelCalls.tokensIn}, 0) + coalesce(${modelCalls.tokensOut}, 0)), 0)::float8`;
  const cost = sql<number>`coalesce(sum(${modelCalls.costUsd}), 0)::float8`;
  /** The user's calls since a time that reached a provider (not a contemplation's own row), with one more condition. */
  const callsOf = (since: string, also: SQL) =>
    and(eq(modelCalls.userKey, p("user")), gte(modelCalls.startedAt, p(since)), ne(modelCalls.provider, "parley"), also);
  return {
    usage: db
      .select({ mode: sql<string>`coalesce(${modelCalls.mode}, 'other')`, calls: sql<number>`count(*)::int`, tokens, cost })
      .from(modelCalls)
      .where(callsOf("since", sql`(${p("except")}::bigint is null or ${modelCalls.inboxId} is distinct from ${p("except")}::bigint)`))
      .groupBy(sql`1`)
      .prepare("parley_usage_since"),
    // What admitting a message needs, in one round trip: the messages of the last minute (taken in, stored before
    // this one) and the day's tokens and cost. A null window start skips its count (no limit is set).
    admission: db
      .select({
        messages: sql<number>`(select count(*)::int from ${inbox} i ${admissionMessages})`,
        oldest: sql<unknown>`(select min(i.created_at) from ${inbox} i ${admissionMessages})`,
        tokens,
        cost,
      })
      .from(modelCalls)
      .where(callsOf("daySince", sql`${modelCalls.inboxId} is distinct from ${p("inboxId")}::bigint`))
      .prepare("parley_admission"),
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

export interface AdmissionCounts {
  /** Messages taken in (not refused or ignored) since `minuteSince` and stored before this one, and the oldest's time. */
  messages: number;
  oldestMessage: Date | null;
  /** Tokens and cost of the calls since `daySince` that reached a provider, this message's own (a retry's) left out. */
  tokens: number;
  costUsd: number;
}

/**
 * What the quota checks of inbox row `inboxId` need, in one query. Earlier rows only: a burst is judged in the order
 * it came. A null `minuteSince` or `daySince` leaves that count at zero without reading anything.
 */
export async function admissionCounts(
  db: Db,
  user: string,
  inboxId: number,
  windows: { minuteSince: Date | null; daySince: Date | null },
): Promise<AdmissionCounts> {
  const [row] = await queriesOf(db).admission.execute({ user, inboxId, ...windows });
  return {
    messages: Number(row?.messages ?? 0),
    oldestMessage: toDate(row?.oldest),
    tokens: Number(row?.tokens ?? 0),
    costUsd: Number(row?.cost ?? 0),
  };
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
