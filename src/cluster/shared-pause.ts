import { Redis } from "ioredis";
import type { Logger } from "../observability/logger.ts";

/**
 * A platform's "send nothing until …" shared by every Parley process through Redis: Telegram's 429 pauses the bot
 * token, so when one process is told to wait, all of them must. (channels/telegram/flood-wait.ts asks for the pause
 * before every call; this is the store it asks.)
 *
 * Reading costs nothing: each process keeps the pause in memory and learns of another's through pub/sub, the moment
 * it is recorded, and once with PTTL when it starts and after each reconnect (for a pause recorded while it was not
 * listening). A cache of a few hundred ms would also spare the round trip per call, but would let a process go on
 * sending, for as long as its cached value is fresh, into a pause that Telegram already imposed on the bot; pub/sub
 * costs one more connection per process and tells every process within a millisecond or so.
 *
 * Writing: a Lua script sets the key to the end of the pause with a PX expiry and publishes it, only if that moves
 * the pause later. Durations, not times, cross the wire (the remaining PTTL, the published milliseconds), so the
 * processes' clocks need not agree; the key's value, the end as the writing process saw it, is for people.
 *
 * Redis being away never holds a call back here: the process keeps its own pause as it would alone, says so once per
 * outage, and reads the shared pause again when Redis is back.
 */

export interface SharedPause {
  /** Ms since the epoch (this process's clock) before which nothing may be sent; in the past when not paused. */
  pausedUntil(): number;
  /** Pauses every process for `retryAfterMs` from now, unless they are already paused for longer. Never throws. */
  pause(retryAfterMs: number): void;
}

export interface SharedPauses {
  /** The pause under a Redis key, e.g. `parley:telegram:<bot id>:paused-until` (one instance per key). */
  forKey(key: string): SharedPause;
  stop(): Promise<void>;
}

/** KEYS[1]: the pause; ARGV: its length in ms, its end as the writer sees it. Returns the ms the pause still lasts. */
const EXTEND = `
local left = redis.call('PTTL', KEYS[1])
local wanted = tonumber(ARGV[1])
if left >= wanted then return left end
redis.call('SET', KEYS[1], ARGV[2], 'PX', wanted)
redis.call('PUBLISH', KEYS[1], ARGV[1])
return wanted
`;

export function createSharedPauses(deps: { redisUrl: string; log: Logger; now?: () => number }): SharedPauses {
  const log = deps.log.child({ source: "limits" });
  const now = deps.now ?? Date.now;
  // Commands fail at once while Redis is away (no offline queue): a pause is then only this process's.
  const client = new Redis(deps.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  // The subscriber queues its SUBSCRIBEs until connected and subscribes again after a reconnect (ioredis).
  const subscriber = new Redis(deps.redisUrl, { maxRetriesPerRequest: null });
  const pauses = new Map<string, { until: number }>();
  let down = false;
  let stopped = false;

  const extendLocal = (key: string, ms: number) => {
    const state = pauses.get(key);
    if (state && ms > 0) state.until = Math.max(state.until, now() + ms);
  };
  const unreachable = (error: unknown) => {
    if (stopped) return; // commands cut short by stop() are no outage
    if (!down) log.error({ err: error }, "Redis for the shared Telegram pause is unreachable; each process keeps its own pause meanwhile");
    down = true;
  };
  /** Learns of a pause recorded while this process was not listening. */
  const readBack = (key: string) => {
    if (client.status !== "ready") return;
    client.pttl(key).then((ms) => extendLocal(key, ms), unreachable);
  };
  const readAll = () => {
    if (client.status !== "ready" || subscriber.status !== "ready") return;
    if (down) log.info("Redis for the shared Telegram pause is reachable again");
    down = false;
    for (const key of pauses.keys()) readBack(key);
  };

  client.on("error", unreachable);
  subscriber.on("error", unreachable);
  client.on("ready", readAll);
  subscriber.on("ready", readAll);
  subscriber.on("message", (key: string, message: string) => extendLocal(key, Number(message)));

  return {
    forKey(key) {
      const existing = pauses.get(key);
      const state = existing ?? { until: 0 };
      if (!existing) {
        pauses.set(key, state);
        subscriber.subscribe(key).then(() => readBack(key), unreachable);
      }
      return {
        pausedUntil: () => state.until,
        pause(retryAfterMs) {
          const ms = Math.ceil(retryAfterMs);
          if (!(ms > 0)) return;
          state.until = Math.max(state.until, now() + ms);
          if (client.status !== "ready") return unreachable(new Error(`Redis connection is ${client.status}`));
          client.eval(EXTEND, 1, key, ms, now() + ms).catch(unreachable);
        },
      };
    },
    async stop() {
      stopped = true;
      // QUIT only on a live connection: queued behind a reconnect it would wait for Redis to come back.
      await Promise.all(
        [client, subscriber].map((redis) => (redis.status === "ready" ? redis.quit().then(() => undefined, () => redis.disconnect()) : redis.disconnect())),
      );
    },
  };
}
