import { and, eq, gte, sql } from "drizzle-orm";
import { isKey, keyProblem } from "../core/keys.ts";
import type { InboundMessage, OutboundFile, UserKey } from "../core/types.ts";
import { rowsOf, type Db } from "../db/client.ts";
import { inbox, messages, users } from "../db/schema.ts";
import type { Logger } from "../observability/logger.ts";
import { exportFile, exportLines, exportReply } from "../privacy/export.ts";
import { startOfDay, startOfMonth } from "../quotas/calendar.ts";
import { formatNumber, limitsOf, type QuotaLimits } from "../quotas/guard.ts";
import { usageSince, type Usage } from "../quotas/usage.ts";
import { approvePairing, listPendingPairings, normalizeCode, setUserAccess } from "./pairing.ts";
import { isAdmin, type AccessSettings } from "./policy.ts";

/**
 * The chat commands beyond the conversation's own (commands.ts): /usage and /export for everyone, and for admins
 * (ADMIN_USERS) in a direct chat /approve CODE, /allow <user key>, /block <user key> and /stats. The service calls
 * `run` for a command it does not know itself; undefined means "not one of these" (a non-admin asking for an admin
 * command gets the same answer as for any unknown command). Commands are parsed from the sender's own text only.
 */

/** A command's answer: text, or a file with the same content as text for a channel that cannot send files. */
export type CommandReply = string | { file: OutboundFile; text: string };

export interface ChatCommands {
  run(name: string, args: string, message: InboundMessage): Promise<CommandReply | undefined>;
}

export interface ChatCommandsDeps {
  db: Db;
  access: AccessSettings;
  /** QUOTA_* defaults, for /usage. */
  quotas: QuotaLimits;
  timeZone: string;
  log: Logger;
  clock?: () => Date;
}

const ADMIN_ONLY = new Set(["approve", "allow", "block", "stats"]);

export function createChatCommands(deps: ChatCommandsDeps): ChatCommands {
  const { db, access, log } = deps;
  const clock = deps.clock ?? (() => new Date());

  const targetOf = (args: string): UserKey | string => {
    const key = args.trim().split(/\s+/)[0] ?? "";
    const problem = key === "" || key.length > 300 ? undefined : keyProblem(key, "user");
    if (key !== "" && key.length <= 300 && problem === undefined) return key as UserKey;
    return `Give a user key, e.g. /block telegram:12345 (the key is on the admin page)${problem ? `: that one ${problem}` : ""}.`;
  };

  const admin = async (name: string, args: string, message: InboundMessage): Promise<string> => {
    switch (name) {
      case "approve": {
        const code = normalizeCode(args);
        if (!code) return "Give the 8-character code, e.g. /approve ABCD2345.";
        const approved = await approvePairing(db, code, clock());
        if (!approved) return `There is no pending code ${code} (codes are valid for an hour).`;
        log.info({ admin: message.user, user: approved.user }, "pairing approved from the chat");
        return `Approved: ${approved.displayName ? `${approved.displayName} (${approved.user})` : approved.user} may write now.`;
      }
      case "allow":
      case "block": {
        const target = targetOf(args);
        if (!isKey(target)) return target;
        if (name === "block" && isAdmin(access, target)) return `${target} is an admin (ADMIN_USERS); remove them there first.`;
        await setUserAccess(db, target, name === "allow" ? "allowed" : "blocked");
        log.info({ admin: message.user, user: target, status: name === "allow" ? "allowed" : "blocked" }, "user status changed from the chat");
        return name === "allow" ? `Allowed: ${target} may write now.` : `Blocked: ${target} gets no more answers.`;
      }
      default:
        return stats(db, clock(), deps.timeZone);
    }
  };

  return {
    async run(name, args, message) {
      switch (name) {
        case "usage": {
          const [user] = await db.select().from(users).where(eq(users.key, message.user));
          return usageText(db, message.user, limitsOf(deps.quotas, user ?? {}), clock(), deps.timeZone);
        }
        case "export": {
          // A group would read along.
          if (message.isGroup) return "Send /export in a direct chat with me: your data is not for the group.";
          const lines = await exportLines(db, message.user);
          const file = exportFile(lines, clock());
          return file ? { file, text: exportReply(lines) } : exportReply(lines);
        }
        default:
          if (!ADMIN_ONLY.has(name) || !isAdmin(access, message.user)) return undefined;
          if (message.isGroup) return `/${name} works in a direct chat with me only.`;
          return admin(name, args, message);
      }
    },
  };
}

async function usageText(db: Db, user: UserKey, limits: QuotaLimits, now: Date, timeZone: string): Promise<string> {
  const [today, month] = await Promise.all([
    usageSince(db, user, startOfDay(now, timeZone)),
    usageSince(db, user, startOfMonth(now, timeZone)),
  ]);
  const cap = (value: number | null, unit: string) => (value === null ? `no limit of ${unit}` : `${formatNumber(value)} ${unit}`);
  return [
    `Your usage (days and months of ${timeZone}):`,
    `Today: ${usageLine(today)}`,
    `This month: ${usageLine(month)}`,
    "",
    "Your limits:",
    `• ${cap(limits.messagesPerMinute, "messages")} a minute`,
    `• ${cap(limits.contemplationsPerHour, "contemplations")} an hour`,
    `• ${cap(limits.tokensPerDay, "tokens")} a day${limits.tokensPerDay === null ? "" : ` (${formatNumber(today.tokens)} used today)`}`,
    `• ${limits.costPerDayUsd === null ? "no cost limit" : `$${limits.costPerDayUsd.toFixed(2)} a day ($${today.costUsd.toFixed(4)} used today)`}`,
  ].join("\n");
}

function usageLine(usage: Usage): string {
  if (usage.calls === 0) return "nothing yet";
  const modes = Object.entries(usage.byMode)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([mode, u]) => `${mode} ${u.calls}`)
    .join(", ");
  return `${formatNumber(usage.tokens)} tokens · $${usage.costUsd.toFixed(4)} · ${usage.calls} model call${usage.calls === 1 ? "" : "s"} (${modes})`;
}

async function stats(db: Db, now: Date, timeZone: string): Promise<string> {
  const dayStart = startOfDay(now, timeZone);
  const [statuses, pending, sent, calls, queue] = await Promise.all([
    db.select({ status: users.status, n: sql<number>`count(*)`.mapWith(Number) }).from(users).groupBy(users.status),
    listPendingPairings(db, now),
    db.select({ n: sql<number>`count(*)`.mapWith(Number) }).from(messages).where(and(eq(messages.role, "user"), gte(messages.createdAt, dayStart))),
    db.execute(sql`
      select count(*)::int as calls, count(distinct user_key)::int as people,
        coalesce(sum(coalesce(tokens_in, 0) + coalesce(tokens_out, 0)), 0)::float8 as tokens, coalesce(sum(cost_usd), 0)::float8 as cost
      from model_calls where started_at >= ${dayStart} and provider <> 'parley'`),
    db
      .select({ state: inbox.state, n: sql<number>`count(*)`.mapWith(Number) })
      .from(inbox)
      .where(sql`${inbox.state} in ('pending', 'working')`)
      .groupBy(inbox.state),
  ]);
  const count = (status: string) => statuses.find((s) => s.status === status)?.n ?? 0;
  const c = rowsOf<{ calls: unknown; people: unknown; tokens: unknown; cost: unknown }>(calls)[0];
  const waiting = (state: string) => queue.find((q) => q.state === state)?.n ?? 0;
  return [
    `Users: ${count("allowed")} allowed, ${count("pending")} pending, ${count("blocked")} blocked; ${pending.length} pairing code${pending.length === 1 ? "" : "s"} waiting${
      pending.length > 0 ? ` (${pending.map((p) => `${p.code} ${p.user}`).join(", ")})` : ""
    }`,
    `Today (${timeZone}): ${sent[0]?.n ?? 0} messages, ${Number(c?.calls ?? 0)} model calls for ${Number(c?.people ?? 0)} people, ${formatNumber(
      Number(c?.tokens ?? 0),
    )} tokens, $${Number(c?.cost ?? 0).toFixed(4)}`,
    `Inbox: ${waiting("pending")} waiting, ${waiting("working")} being answered`,
  ].join("\n");
}

