import type { ChannelAdapter } from "../core/types.ts";
import type { DatabaseTarget } from "../db/client.ts";
import type { Logger } from "../observability/logger.ts";
import { createLeadership, type Leadership } from "./leader.ts";
import { receiveAsLeaderOnly, runAsLeaderOnly, type LeaderOnlyChannel } from "./leader-only.ts";
import type { SharedLimits, TelegramThrottlerOptions } from "./shared-limits.ts";
import type { SharedPause, SharedPauses } from "./shared-pause.ts";

/**
 * What several Parley processes share beyond the inbox (which PostgreSQL coordinates by itself): leadership for the
 * jobs that only one process may do, and, with Redis, the platforms' rate limits and Telegram's 429 pause. One process
 * alone (or PGlite) is simply the leader of everything and limits itself.
 */
export interface Cluster {
  /** Outbound throttler options for a Telegram bot, shared through Redis; undefined without REDIS_URL. */
  telegramThrottler(token: string): TelegramThrottlerOptions | undefined;
  /** The pause after a 429 for a Telegram bot, shared through Redis; undefined without REDIS_URL. */
  telegramPause(token: string): SharedPause | undefined;
  /** `sender` sends from every process; a receiver from `createReceiver` runs only in the leader for `key`. */
  leaderOnly(key: string, sender: ChannelAdapter, createReceiver: () => ChannelAdapter, standbyDetail: string): ChannelAdapter;
  /** The whole channel (receiving and sending) runs only in the leader for `key`, a new one from `create` each term. */
  leaderOnlyChannel(key: string, create: () => ChannelAdapter, standbyDetail: string): LeaderOnlyChannel;
  stop(): Promise<void>;
}

export async function createCluster(deps: { database: DatabaseTarget; redisUrl?: string; log: Logger }): Promise<Cluster> {
  const leaderships: Leadership[] = [];
  // The Redis client is loaded only when there is a Redis to talk to.
  const limits: SharedLimits | undefined = deps.redisUrl
    ? (await import("./shared-limits.ts")).createSharedLimits({ redisUrl: deps.redisUrl, log: deps.log })
    : undefined;
  const pauses: SharedPauses | undefined = deps.redisUrl
    ? (await import("./shared-pause.ts")).createSharedPauses({ redisUrl: deps.redisUrl, log: deps.log })
    : undefined;
  const botId = (token: string) => token.split(":")[0] ?? "bot";
  return {
    telegramThrottler: (token) => limits?.telegram(botId(token)),
    telegramPause: (token) => pauses?.forKey(`parley:telegram:${botId(token)}:paused-until`),
    leaderOnly(key, sender, createReceiver, standbyDetail) {
      if (deps.database.kind === "pglite") return sender;
      const leadership = createLeadership({ target: deps.database, key, log: deps.log });
      leaderships.push(leadership);
      return receiveAsLeaderOnly({ leadership, sender, createReceiver, standbyDetail, log: deps.log });
    },
    leaderOnlyChannel(key, create, standbyDetail) {
      if (deps.database.kind === "pglite") return { adapter: create(), leads: () => true };
      const leadership = createLeadership({ target: deps.database, key, log: deps.log });
      leaderships.push(leadership);
      return runAsLeaderOnly({ leadership, create, standbyDetail, log: deps.log });
    },
    async stop() {
      await Promise.all(leaderships.map((l) => l.stop()));
      await Promise.all([limits?.stop(), pauses?.stop()]);
    },
  };
}
