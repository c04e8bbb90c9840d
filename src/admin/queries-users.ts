import { and, asc, desc, eq, ilike, or, sql, type SQL } from "drizzle-orm";
import type { ChannelName } from "../core/types.ts";
import { rowsOf, type Db } from "../db/client.ts";
import { users } from "../db/schema.ts";
import { num } from "./format.ts";
import { containsPattern } from "./params.ts";
import { list } from "./sql-params.ts";

/**
 * Users for the admin pages: a filtered page of users (a fixed page size, by offset), their usage computed for the
 * users on that page only, and the two changes an operator makes (status, default mode).
 */

export const USER_PAGE = 50;
export const USER_STATUSES = ["pending", "allowed", "blocked"] as const;
export const MODES = ["instant", "thinking", "contemplating"] as const;
export type UserStatus = (typeof USER_STATUSES)[number];
export type Mode = (typeof MODES)[number];

export type UserRow = typeof users.$inferSelect;

export interface UserFilters {
  status?: UserStatus;
  channel?: ChannelName;
  q?: string;
}

export interface Usage {
  /** Messages the user sent. */
  messages: number;
  calls: number;
  tokensIn: number;
  tokensOut: number;
  costUsd: number;
}

export const NO_USAGE: Usage = { messages: 0, calls: 0, tokensIn: 0, tokensOut: 0, costUsd: 0 };

export async function listUsers(db: Db, filters: UserFilters, page: number): Promise<{ rows: UserRow[]; more: boolean }> {
  const where: SQL[] = [];
  if (filters.status) where.push(eq(users.status, filters.status));
  if (filters.channel) where.push(eq(users.channel, filters.channel));
  if (filters.q) {
    const pattern = containsPattern(filters.q);
    where.push(or(ilike(users.key, pattern), ilike(users.displayName, pattern))!);
  }
  const rows = await db
    .select()
    .from(users)
    .where(where.length > 0 ? and(...where) : undefined)
    .orderBy(desc(users.lastSeenAt), asc(users.key))
    .limit(USER_PAGE + 1)
    .offset((page - 1) * USER_PAGE);
  return { rows: rows.slice(0, USER_PAGE), more: rows.length > USER_PAGE };
}

export async function getUser(db: Db, key: string): Promise<UserRow | undefined> {
  const [row] = await db.select().from(users).where(eq(users.key, key)).limit(1);
  return row;
}

/**
 * Usage of the given users (at most a page of them): messages they sent, and model calls made for them. A
 * contemplation's own row (provider "parley") sums its agents and synthesis, which are counted one by one instead.
 */
export async function usageOf(db: Db, keys: readonly string[]): Promise<Map<string, Usage>> {
  const usage = new Map<string, Usage>(keys.map((k) => [k, { ...NO_USAGE }]));
  if (keys.length === 0) return usage;
  const [messageRows, callRows] = await Promise.all([
    db.execute(sql`
      select c.user_key, count(m.id)::int as n
      from conversations c join messages m on m.conversation_id = c.id and m.role = 'user'
      where c.user_key in ${list(keys)} group by c.user_key`),
    db.execute(sql`
      select user_key, count(*)::int as calls, coalesce(sum(tokens_in), 0)::float8 as tokens_in,
        coalesce(sum(tokens_out), 0)::float8 as tokens_out, coalesce(sum(cost_usd), 0)::float8 as cost
      from model_calls where user_key in ${list(keys)} and provider <> 'parley' group by user_key`),
  ]);
  for (const r of rowsOf<Record<string, unknown>>(messageRows)) {
    const u = usage.get(String(r.user_key));
    if (u) u.messages = num(r.n);
  }
  for (const r of rowsOf<Record<string, unknown>>(callRows)) {
    const u = usage.get(String(r.user_key));
    if (!u) continue;
    u.calls = num(r.calls);
    u.tokensIn = num(r.tokens_in);
    u.tokensOut = num(r.tokens_out);
    u.costUsd = num(r.cost);
  }
  return usage;
}

export async function setUserStatus(db: Db, key: string, status: UserStatus): Promise<boolean> {
  const rows = await db.update(users).set({ status }).where(eq(users.key, key)).returning({ key: users.key });
  return rows.length > 0;
}

export async function setUserMode(db: Db, key: string, mode: Mode): Promise<boolean> {
  const rows = await db.update(users).set({ defaultMode: mode }).where(eq(users.key, key)).returning({ key: users.key });
  return rows.length > 0;
}

/** A user's model calls, tokens and cost by mode (summaries count as "other"), as /usage counts them. */
export async function usageByMode(db: Db, key: string): Promise<Array<{ mode: string; calls: number; tokens: number; costUsd: number }>> {
  const rows = rowsOf<Record<string, unknown>>(
    await db.execute(sql`
      select coalesce(mode, 'other') as mode, count(*)::int as calls,
        coalesce(sum(coalesce(tokens_in, 0) + coalesce(tokens_out, 0)), 0)::float8 as tokens, coalesce(sum(cost_usd), 0)::float8 as cost
      from model_calls where user_key = ${key} and provider <> 'parley' group by 1 order by 1`),
  );
  return rows.map((r) => ({ mode: String(r.mode), calls: num(r.calls), tokens: num(r.tokens), costUsd: num(r.cost) }));
}

export const QUOTA_FIELDS = ["quotaMessagesPerMinute", "quotaContemplationsPerHour", "quotaTokensPerDay", "quotaCostPerDayUsd"] as const;
export type QuotaOverrides = Record<(typeof QUOTA_FIELDS)[number], number | null>;

/** A user's own quotas; null puts a quota back to the configured default, 0 means no limit. */
export async function setUserQuotas(db: Db, key: string, quotas: QuotaOverrides): Promise<boolean> {
  const rows = await db.update(users).set(quotas).where(eq(users.key, key)).returning({ key: users.key });
  return rows.length > 0;
}
