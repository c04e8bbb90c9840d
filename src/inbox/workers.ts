import type { Logger } from "../observability/logger.ts";
import type { Inbox, InboxItem } from "./inbox.ts";

/**
 * A pool of workers that claim inbox rows and hand them to `handle`. Each claim's lease is extended while its work
 * goes on, so a long model call is not taken over by another worker; if the process dies, the lease runs out and the
 * row is claimed again. A database that is down makes the workers back off and try again, never exit.
 */
export interface WorkerPool {
  /** Tells idle workers that a new row is waiting (saves them the poll interval). */
  wake(): void;
  /** Resolves when every worker has stopped after `signal` aborted (in-flight work finishes first). */
  done: Promise<void>;
}

export interface WorkerPoolOptions {
  inbox: Inbox;
  handle: (item: InboxItem, signal: AbortSignal) => Promise<void>;
  concurrency: number;
  leaseMs: number;
  pollMs?: number;
  log: Logger;
  signal: AbortSignal;
}

export function startWorkers(options: WorkerPoolOptions): WorkerPool {
  const { inbox, handle, concurrency, leaseMs, log, signal } = options;
  const pollMs = options.pollMs ?? 1_000;
  let waiters: Array<() => void> = [];

  const wake = () => {
    const current = waiters;
    waiters = [];
    for (const resolve of current) resolve();
  };
  signal.addEventListener("abort", wake, { once: true });

  const idle = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      waiters.push(done);
    });

  const work = async (item: InboxItem) => {
    const heartbeat = setInterval(() => {
      inbox.extendLease(item.id).catch((error: unknown) => log.warn({ err: error, inboxId: item.id }, "could not extend lease"));
    }, Math.max(50, Math.floor(leaseMs / 3)));
    try {
      await handle(item, signal);
    } finally {
      clearInterval(heartbeat);
    }
  };

  const loop = async (n: number) => {
    let failures = 0;
    while (!signal.aborted) {
      let item: InboxItem | null;
      try {
        item = await inbox.claim();
        failures = 0;
      } catch (error) {
        failures++;
        const backoff = Math.min(30_000, 250 * 2 ** Math.min(failures, 7));
        if (failures === 1 || failures % 10 === 0) log.error({ err: error, worker: n, backoffMs: backoff }, "cannot claim work from the inbox");
        await idle(backoff);
        continue;
      }
      if (!item) {
        await idle(pollMs);
        continue;
      }
      try {
        await work(item);
      } catch (error) {
        // handle() has its own boundary; reaching here means even recording the outcome failed (database down).
        // The row keeps its lease and is claimed again when it runs out.
        log.error({ err: error, inboxId: item.id }, "message handling failed; it will be retried after its lease");
      }
    }
  };

  const done = Promise.all(Array.from({ length: concurrency }, (_, n) => loop(n))).then(() => undefined);
  return { wake, done };
}
