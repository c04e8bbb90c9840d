import Bottleneck from "../core/bottleneck.ts";
import type { Redis } from "ioredis";
import type { Logger } from "../observability/logger.ts";

/**
 * One message of a user at a time, whichever chat it came from: the inbox already answers one chat in order, but a
 * person in a direct chat and a group (or on two processes) would otherwise have two model calls running at once.
 * A Bottleneck group of limiters with maxConcurrent 1, keyed by user key.
 *
 * With REDIS_URL the limiters live in Redis (Bottleneck's clustering, through ioredis), so several Parley processes
 * share the limit. While Redis is not reachable, each process limits its users on its own rather than waiting for
 * it. Idle users' limiters are dropped after a few minutes.
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

export function createUserLimiter(deps: { redisUrl?: string; log: Logger }): UserLimiter {
  const local = new Bottleneck.Group({ maxConcurrent: 1, timeout: IDLE_MS });
  if (!deps.redisUrl) {
    return {
      run: (user, job) => local.key(user).schedule(job),
      shared: () => false,
      stop: async () => {
        await Promise.all(local.limiters().map(({ limiter }) => limiter.stop({ dropWaitingJobs: false })));
      },
    };
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
      const group = isShared() ? shared!.group : local;
      return group.key(user).schedule(job);
    },
    shared: isShared,
    async stop() {
      await Promise.all(local.limiters().map(({ limiter }) => limiter.stop({ dropWaitingJobs: false })));
      await connecting;
      if (!shared) return;
      const { group, connection } = shared;
      // Stops the group's limiters (their heartbeats); the shared connection is closed below.
      await Promise.resolve(group.disconnect(true) as Promise<unknown> | undefined).catch(() => undefined);
      await connection.disconnect(true).catch(() => connection.disconnect(false));
    },
  };
}
