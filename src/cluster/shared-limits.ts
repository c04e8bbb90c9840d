import Bottleneck from "../core/bottleneck.ts";
import { Redis } from "ioredis";
import type { Logger } from "../observability/logger.ts";

/**
 * Platform rate limits shared by every Parley process through Redis (Bottleneck's clustering): the limiters keep
 * their state (running jobs, the time of the last call, reservoirs) in Redis, so Telegram's per-chat and per-bot
 * limits hold for the bot as a whole, not per process. Without REDIS_URL each process limits only itself.
 *
 * Queued calls stay in the process that made them. A process that dies while a call runs frees its share after
 * Bottleneck's client timeout (10 s).
 */

/** Bottleneck constructor options for @grammyjs/transformer-throttler's three limiter groups. */
export interface TelegramThrottlerOptions {
  global: Bottleneck.ConstructorOptions;
  group: Bottleneck.ConstructorOptions;
  out: Bottleneck.ConstructorOptions;
}

export interface SharedLimits {
  /** The throttler options for one bot (by its numeric id, the part of the token before ":"). */
  telegram(botId: string): TelegramThrottlerOptions;
  stop(): Promise<void>;
}

/** Bump when a limit below changes: Bottleneck keeps the settings of the first limiter of an id in Redis. */
const VERSION = "v1";

export function createSharedLimits(deps: { redisUrl: string; log: Logger }): SharedLimits {
  const log = deps.log.child({ source: "limits" });
  const client = new Redis(deps.redisUrl, { lazyConnect: false, enableAutoPipelining: true });
  const connection = new Bottleneck.IORedisConnection({ client, Redis });
  let reported = false;
  connection.on("error", (error: unknown) => {
    // ioredis reconnects by itself; say so once per outage rather than on every retry.
    if (!reported) log.error({ err: error }, "Redis for the shared rate limits is unreachable; sending waits for it");
    reported = true;
  });
  client.on("ready", () => {
    if (reported) log.info("Redis for the shared rate limits is reachable again");
    reported = false;
  });
  const shared = { datastore: "ioredis" as const, connection, clearDatastore: false };

  return {
    telegram(botId) {
      const id = (name: string) => `parley:telegram:${botId}:${VERSION}:${name}`;
      // The values are transformer-throttler's defaults: ~30 messages a second per bot, 1 a second per chat,
      // 20 a minute per group. The global limiter checks its reservoir every 250 ms (Redis default: 5 s).
      return {
        global: {
          ...shared,
          id: id("global"),
          reservoir: 30,
          reservoirRefreshAmount: 30,
          reservoirRefreshInterval: 1_000,
          timeout: 24 * 3_600_000, // an idle bot's state leaves Redis after a day
          // A Redis store option missing from Bottleneck's types.
          ...({ heartbeatInterval: 250 } as Bottleneck.ConstructorOptions),
        },
        group: {
          ...shared,
          id: id("group"),
          maxConcurrent: 1,
          minTime: 1_000,
          reservoir: 20,
          reservoirRefreshAmount: 20,
          reservoirRefreshInterval: 60_000,
        },
        out: { ...shared, id: id("out"), maxConcurrent: 1, minTime: 1_000 },
      };
    },
    async stop() {
      await connection.disconnect(true).catch(() => connection.disconnect(false));
    },
  };
}
