import { createHash } from "node:crypto";
import pg from "pg";
import type { DatabaseTarget } from "../db/client.ts";
import type { Logger } from "../observability/logger.ts";

/**
 * Which one of several Parley processes sharing a PostgreSQL database does a job that only one may do at a time
 * (Telegram long polling, a WhatsApp Web session). The leader holds a session-level advisory lock
 * (pg_try_advisory_lock) on a connection of its own, kept for as long as it leads: when the process dies, the
 * server drops the connection and with it the lock, and a standby that asks again (every `pollMs`) takes over.
 *
 * The leader checks its connection every `pollMs` too; a connection that fails or does not answer in time means
 * the lock may already be someone else's, so leadership ends at once (the job must stop) and is sought again.
 * On PGlite there is only ever one process: it leads from the start.
 */

export interface Leadership {
  /** Resolves once the first attempt is over: isLeader() then tells the outcome. */
  readonly ready: Promise<void>;
  isLeader(): boolean;
  /** Calls `listener` on every change; returns the function that unsubscribes it. */
  onChange(listener: (leader: boolean) => void): () => void;
  /** Ends leadership (the lock is released with the connection) and stops seeking it. */
  stop(): Promise<void>;
}

export interface LeadershipOptions {
  target: DatabaseTarget;
  /** What is led, e.g. `telegram-polling:123456`; hashed into the 64-bit advisory lock key. */
  key: string;
  log: Logger;
  /** How often a standby asks for the lock and the leader checks its connection. Default 3 s. */
  pollMs?: number;
}

export function createLeadership(options: LeadershipOptions): Leadership {
  const listeners = new Set<(leader: boolean) => void>();
  const onChange = (listener: (leader: boolean) => void) => {
    listeners.add(listener);
    return () => void listeners.delete(listener);
  };
  if (options.target.kind === "pglite") {
    return { ready: Promise.resolve(), isLeader: () => true, onChange, stop: async () => {} };
  }

  const { url } = options.target;
  const pollMs = options.pollMs ?? 3_000;
  const lockId = advisoryLockId(options.key);
  const log = options.log.child({ source: "cluster", lock: options.key });
  let leader = false;
  let stopped = false;
  let client: pg.Client | undefined;
  let wake: (() => void) | undefined;

  const setLeader = (next: boolean) => {
    if (leader === next) return;
    leader = next;
    log.info(next ? "this process is now the leader" : "this process is no longer the leader");
    for (const listener of listeners) {
      try {
        listener(next);
      } catch (error) {
        log.error({ err: error }, "a leadership listener failed");
      }
    }
  };

  const drop = () => {
    const old = client;
    client = undefined;
    setLeader(false);
    // The server frees the lock when the session ends; end() also covers a connection that is still alive.
    old?.end().catch(() => undefined);
  };

  const connect = async (): Promise<pg.Client> => {
    const fresh = new pg.Client({
      connectionString: url,
      application_name: "parley-leader",
      keepAlive: true,
      connectionTimeoutMillis: pollMs * 2,
      query_timeout: pollMs * 2,
    });
    fresh.on("error", (error) => {
      if (client !== fresh) return;
      log.warn({ err: error }, "leadership connection lost");
      drop();
      wake?.();
    });
    try {
      await fresh.connect();
    } catch (error) {
      fresh.end().catch(() => undefined);
      throw error;
    }
    return fresh;
  };

  /** One round: take the lock if free (standby), or prove the connection that holds it still works (leader). */
  const attempt = async () => {
    try {
      if (!client) client = await connect();
      if (leader) {
        await client.query("select 1");
        return;
      }
      const result = await client.query<{ locked: boolean }>("select pg_try_advisory_lock($1::bigint) as locked", [lockId]);
      if (stopped) return;
      setLeader(result.rows[0]?.locked === true);
    } catch (error) {
      if (stopped) return;
      log.warn({ err: error, retryInMs: pollMs }, leader ? "leadership connection failed; stepping down" : "cannot ask for leadership");
      drop();
    }
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });

  const ready = attempt();
  const loop = (async () => {
    await ready;
    while (!stopped) {
      await sleep(pollMs);
      if (!stopped) await attempt();
    }
  })();

  return {
    ready,
    isLeader: () => leader,
    onChange,
    async stop() {
      if (stopped) return;
      stopped = true;
      wake?.();
      await loop;
      const old = client;
      client = undefined;
      setLeader(false);
      await old?.end().catch(() => undefined);
    },
  };
}

/** A stable signed 64-bit key for pg_advisory_lock, as a decimal string (beyond JavaScript's safe integers). */
export function advisoryLockId(key: string): string {
  return createHash("sha256").update(`parley:${key}`, "utf8").digest().readBigInt64BE(0).toString();
}
