import Bottleneck from "../core/bottleneck.ts";
import type { Redis } from "ioredis";
import type { Logger } from "../observability/logger.ts";

/**
 * One message of a user at a time, whichever chat it came from: the inbox already answers one chat in order, but a
 * person in a direct chat and a group (or on two processes) would otherwise have two model calls running at once.
 *
 * With REDIS_URL it is a Bottleneck group of limiters with maxConcurrent 1, keyed by user key, living in Redis
 * (Bottleneck's clustering, through ioredis), so several Parley processes share the limit; idle users' limiters are
 * dropped after a few minutes. Without Redis, and while it is not reachable, each process limits its users on its
 * own with a queue per user in memory (a Bottleneck limiter per user would cost every message several timers and
 * events for what a promise chain does).
 */

export interface UserLimiter {
  /** Runs `job` once no other job of `user` runs (in this process, or in any with Redis). */
  run<T>(user: string, job: () => Promise<T>): Promise<T>;
  /** Whether the limit is shared through Redis right now. */
  shared(): boolean;
  stop(): Promise<void>;
}

const IDLE_MS = 5 * 60_000;
/** Bump when the settings below change: Bottleneck keeps the first limiter's settings of an id in Redis. */
const VERSION = "v1";

/** One job per key at a time, in the order they came, in this process; a key's queue is gone once it is empty. */
function createKeyedQueue() {
  const tails = new Map<string, Promise<void>>();
  return {
    run<T>(key: string, job: () => Promise<T>): Promise<T> {
      const result = (tails.get(key) ?? Promise.resolve()).then(job);
      const tail = result.then(
        () => undefined,
        () => undefined,
      );
      tails.set(key, tail);
      void tail.then(() => {
        if (tails.get(key) === tail) tails.delete(key);
      });
      return result;
    },
    /** Resolves when every job queued so far has ended. */
    async drain(): Promise<void> {
      await Promise.all(tails.values());
    },
  };
}

export function createUserLimiter(deps: { redisUrl?: string; log: Logger }): UserLimiter {
  const local = createKeyedQueue();
  if (!deps.redisUrl) {
    return { run: local.run, shared: () => false, stop: local.drain };
  }

  const log = deps.log.child({ source: "limits" });
  const redisUrl = deps.redisUrl;
  // ioredis is loaded only when Redis is configured (it costs ~20 MB resident); until it is connected, and whenever
  // it is not, each process limits its users on its own.
  let shared: { client: Redis; connection: Bottleneck.IORedisConnection; group: Bottleneck.Group } | undefined;
  const connecting = import("ioredis").then(({ Redis }) => {
    const client = new Redis(redisUrl, { lazyConnect: false, enableAutoPipelining: true, maxRetriesPerRequest: 2 });
    const connection = new Bottleneck.IORedisConnection({ client, Redis });
    let reported = false;
    connection.on("error", (error: unknown) => {
      if (!reported) log.error({ err: error }, "Redis for the per-user limit is unreachable; each process limits its users alone");
      reported = true;
    });
    client.on("ready", () => {
      if (reported) log.info("Redis for the per-user limit is reachable again");
      reported = false;
    });
    const group = new Bottleneck.Group({
      maxConcurrent: 1,
      timeout: IDLE_MS,
      datastore: "ioredis",
      connection,
      clearDatastore: false,
      id: `parley:users:${VERSION}`,
    });
    group.on("error", (error: unknown) => log.warn({ err: error }, "per-user limiter error"));
    shared = { client, connection, group };
  }).catch((error: unknown) => log.error({ err: error }, "could not load ioredis; each process limits its users alone"));
  const isShared = () => shared?.client.status === "ready";

  return {
    run(user, job) {
      return isShared() ? shared!.group.key(user).schedule(job) : local.run(user, job);
    },
    shared: isShared,
    async stop() {
      await local.drain();
      await connecting;
      if (!shared) return;
      const { group, connection } = shared;
      // Stops the group's limiters (their heartbeats); the shared connection is closed below.
      await Promise.resolve(group.disconnect(true) as Promise<unknown> | undefined).catch(() => undefined);
      await connection.disconnect(true).catch(() => connection.disconnect(false));
    },
  };
}
