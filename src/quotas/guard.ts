import type { Refusal } from "../access/gate.ts";
import type { Db } from "../db/client.ts";
import type { users } from "../db/schema.ts";
import type { ModeName } from "../modes/index.ts";
import { startOfDay, startOfNextDay } from "./calendar.ts";
import { admissionCounts, contemplationsSince, toldSince, type AdmissionCounts } from "./usage.ts";
import { dateFormat } from "../core/date-format.ts";

/**
 * Per-user quotas, checked before anything is sent to a model: messages a minute (every message, commands included),
 * contemplations an hour, tokens and cost a day (the day of DEFAULT_TIMEZONE). The configured defaults (QUOTA_*)
 * apply unless the user has their own value (set on the admin page); null or 0 means no limit.
 *
 * Counts come from the database (inbox rows, model_calls), so they hold across processes and restarts. The checks
 * run inside the per-user limiter (user-limiter.ts), so one user's messages are judged one after the other. A day's
 * token or cost limit can be passed by the one call that crosses it, never by a second one.
 *
 * Over a limit the user is told which limit and when it resets, once per window; further messages in that window
 * are dropped silently (the reason stays on the inbox row).
 */

export interface QuotaLimits {
  messagesPerMinute: number | null;
  contemplationsPerHour: number | null;
  tokensPerDay: number | null;
  costPerDayUsd: number | null;
}

type UserRow = typeof users.$inferSelect;

export interface QuotaGuard {
  readonly defaults: QuotaLimits;
  limitsOf(user: UserRow): QuotaLimits;
  /**
   * Starts reading, for the default limits, what admitting inbox row `inboxId` needs, while the sender's row is read;
   * undefined when no default limit is set. Hand it to `admit`.
   */
  prefetch(userKey: string, inboxId: number): Prefetched | undefined;
  /**
   * Every message, once: reads what every check needs (one query, or none when `prefetched` covers the user's own
   * limits) and judges the messages-a-minute limit.
   */
  admit(user: UserRow, inboxId: number, prefetched?: Prefetched): Promise<Admission>;
}

/** Counts read ahead, for the windows of the default limits at `now`. */
export interface Prefetched {
  now: Date;
  minute: boolean;
  day: boolean;
  counts: Promise<AdmissionCounts>;
}

export interface Admission {
  /** Set when the message itself is over a limit (messages a minute). */
  refusal: Refusal | null;
  /** Before the message is answered by a model in `mode`: contemplations an hour, tokens and cost a day. */
  modelCall(mode: ModeName): Promise<Refusal | null>;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

export const QUOTA_REASONS = {
  messagesPerMinute: "over quota: messages per minute",
  contemplationsPerHour: "over quota: contemplations per hour",
  tokensPerDay: "over quota: tokens per day",
  costPerDayUsd: "over quota: cost per day",
} as const satisfies Record<keyof QuotaLimits, string>;
const TOLD = " (told)";

export function limitsOf(defaults: QuotaLimits, user: Partial<UserRow>): QuotaLimits {
  const pick = (own: number | null | undefined, fallback: number | null) => {
    const value = own ?? fallback;
    return value === null || value <= 0 ? null : value;
  };
  return {
    messagesPerMinute: pick(user.quotaMessagesPerMinute, defaults.messagesPerMinute),
    contemplationsPerHour: pick(user.quotaContemplationsPerHour, defaults.contemplationsPerHour),
    tokensPerDay: pick(user.quotaTokensPerDay, defaults.tokensPerDay),
    costPerDayUsd: pick(user.quotaCostPerDayUsd, defaults.costPerDayUsd),
  };
}

export function createQuotaGuard(deps: { db: Db; defaults: QuotaLimits; timeZone: string; clock?: () => Date }): QuotaGuard {
  const { db, defaults, timeZone } = deps;
  const clock = deps.clock ?? (() => new Date());

  /** The refusal for `quota`, with the reply only the first time in this window. */
  const refuse = async (user: string, quota: keyof QuotaLimits, windowStart: Date, reply: string): Promise<Refusal> => {
    const reason = QUOTA_REASONS[quota];
    if (await toldSince(db, user, reason + TOLD, windowStart)) return { reason };
    return { reason: reason + TOLD, reply };
  };

  /** The windows of the counts: the last minute, and today in `timeZone`; null where no count is wanted. */
  function windowsAt(now: Date, minute: boolean, day: boolean) {
    return { minuteSince: minute ? new Date(now.getTime() - MINUTE) : null, daySince: day ? startOfDay(now, timeZone) : null };
  }

  return {
    defaults,
    limitsOf: (user) => limitsOf(defaults, user),

    prefetch(userKey, inboxId) {
      const minute = defaults.messagesPerMinute !== null;
      const day = defaults.tokensPerDay !== null || defaults.costPerDayUsd !== null;
      if (!minute && !day) return undefined;
      const now = clock();
      const counts = admissionCounts(db, userKey, inboxId, windowsAt(now, minute, day));
      // Read later, or not at all when the sender is refused first: never an unhandled rejection.
      counts.catch(() => undefined);
      return { now, minute, day, counts };
    },

    async admit(user, inboxId, prefetched) {
      const limits = limitsOf(defaults, user);
      const minute = limits.messagesPerMinute !== null;
      const daily = limits.tokensPerDay !== null || limits.costPerDayUsd !== null;
      const covered = prefetched && (!minute || prefetched.minute) && (!daily || prefetched.day);
      const now = covered ? prefetched.now : clock();
      const minuteSince = new Date(now.getTime() - MINUTE);
      const dayStart = startOfDay(now, timeZone);
      const counts = covered
        ? await prefetched.counts
        : minute || daily
          ? await admissionCounts(db, user.key, inboxId, windowsAt(now, minute, daily))
          : undefined;

      const messagesLimit = limits.messagesPerMinute;
      const refusal =
        counts && messagesLimit !== null && counts.messages >= messagesLimit
          ? await refuse(
              user.key,
              "messagesPerMinute",
              minuteSince,
              messagesReply(messagesLimit, new Date((counts.oldestMessage ?? now).getTime() + MINUTE), now),
            )
          : null;

      const modelCall = async (mode: ModeName): Promise<Refusal | null> => {
        if (mode === "contemplating" && limits.contemplationsPerHour !== null) {
          const since = new Date(now.getTime() - HOUR);
          const { count, oldest } = await contemplationsSince(db, user.key, since, inboxId);
          if (count >= limits.contemplationsPerHour) {
            const resetsAt = new Date((oldest ?? now).getTime() + HOUR);
            return refuse(user.key, "contemplationsPerHour", since, contemplationsReply(limits.contemplationsPerHour, resetsAt, now));
          }
        }
        if (!counts || !daily) return null;
        const resetsAt = startOfNextDay(now, timeZone);
        if (limits.tokensPerDay !== null && counts.tokens >= limits.tokensPerDay) {
          return refuse(user.key, "tokensPerDay", dayStart, dailyReply(`${formatNumber(limits.tokensPerDay)} tokens`, resetsAt, timeZone));
        }
        if (limits.costPerDayUsd !== null && counts.costUsd >= limits.costPerDayUsd) {
          return refuse(user.key, "costPerDayUsd", dayStart, dailyReply(`$${limits.costPerDayUsd.toFixed(2)} of model use`, resetsAt, timeZone));
        }
        return null;
      };
      return { refusal, modelCall };
    },
  };
}

function messagesReply(limit: number, resetsAt: Date, now: Date): string {
  const seconds = Math.max(1, Math.ceil((resetsAt.getTime() - now.getTime()) / 1000));
  return `You have sent ${limit} messages within a minute, the most I take. Please wait ${seconds} s, then send your message again.`;
}

function contemplationsReply(limit: number, resetsAt: Date, now: Date): string {
  const minutes = Math.max(1, Math.ceil((resetsAt.getTime() - now.getTime()) / MINUTE));
  return (
    `You have used your ${limit} contemplations for this hour. The next one is possible in ${minutes} min; ` +
    "until then, /think or a plain message works."
  );
}

function dailyReply(what: string, resetsAt: Date, timeZone: string): string {
  const at = dateFormat("en-GB", { timeZone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(resetsAt);
  return `You have used your daily limit of ${what}. It resets at ${at} (${timeZone}); /usage shows where you stand.`;
}

export function formatNumber(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}
