import type { ChannelName } from "../core/types.ts";
import type { Logger } from "../observability/logger.ts";
import type { Inbox, InboxItem } from "./inbox.ts";

/**
 * A pool of workers that claim inbox rows and hand them to `handle`. Each claim's lease is extended while its work
 * goes on, so a long model call is not taken over by another worker; if the process dies, the lease runs out and the
 * row is claimed again. A database that is down makes the workers back off and try again, never exit.
 */
export interface WorkerPool {
  /** Tells an idle worker that a new row is waiting (saves it the poll interval); call it once per row stored. */
  wake(): void;
  /**
   * Takes an idle worker aside for a row about to be stored with `channel`, or undefined when none is idle (or the
   * channel is not delivered from this process). The row stored claimed is then given to it; otherwise release()
   * sends it to claim as if woken for a new row. Saves a claim query and the wake-up on most messages.
   */
  reserve(channel: ChannelName): Reservation | undefined;
  /** Resolves when every worker has stopped after `signal` aborted (in-flight work finishes first). */
  done: Promise<void>;
}

export interface Reservation {
  give(item: InboxItem): void;
  release(): void;
}

export interface WorkerPoolOptions {
  inbox: Inbox;
  handle: (item: InboxItem, signal: AbortSignal) => Promise<void>;
  concurrency: number;
  /** The channels this process can deliver to right now, asked before every claim; default: all. */
  channels?: () => readonly ChannelName[];
  leaseMs: number;
  pollMs?: number;
  log: Logger;
  signal: AbortSignal;
}

export function startWorkers(options: WorkerPoolOptions): WorkerPool {
  const { inbox, handle, concurrency, leaseMs, log, signal } = options;
  const pollMs = options.pollMs ?? 1_000;
  // Idle workers wait in line. A new row wakes one of them, not all (the others' claims would find nothing). One
  // idle worker at a time polls on a timer, for what no wake announces (rows stored by another process, retries
  // coming due, leases running out); when such a poll finds a row it wakes the next worker, which looks for
  // another, and so on, so a backlog still reaches every worker.
  type Reason = "announced" | "found";
  /** What ends a wait: a reason to claim, the timer, or a row claimed for the worker as it was stored (reserve). */
  type Wake = Reason | "timer" | InboxItem;
  interface Waiter {
    wake(how: Wake): void;
    /** Set aside for a row being stored (reserve): only give or release may wake it now, not its timer. */
    reserved: boolean;
  }
  let waiters: Waiter[] = [];
  let polling = false;
  /** Rows announced so far: a worker done with its row claims again at once only if some were announced meanwhile. */
  let announced = 0;

  const wakeOne = (reason: Reason) => waiters.shift()?.wake(reason);
  const wakeAll = () => {
    const current = waiters;
    waiters = [];
    for (const waiter of current) waiter.wake("timer");
  };
  signal.addEventListener("abort", wakeAll, { once: true });

  /** Waits for a wake, or `ms` when given; tells which. A waiter is woken once, whatever wakes it first. */
  const idle = (ms?: number) =>
    new Promise<Wake>((resolve) => {
      if (signal.aborted) return resolve("timer");
      let woken = false;
      const waiter: Waiter = {
        reserved: false,
        wake(how) {
          if (woken) return;
          woken = true;
          clearTimeout(timer);
          waiters = waiters.filter((w) => w !== waiter);
          resolve(how);
        },
      };
      const timer = ms === undefined ? undefined : setTimeout(() => !waiter.reserved && waiter.wake("timer"), ms);
      waiters.push(waiter);
    });

  const waitForWork = async () => {
    if (polling) return idle();
    polling = true;
    try {
      return await idle(pollMs);
    } finally {
      polling = false;
    }
  };

  const reserve = (channel: ChannelName): Reservation | undefined => {
    if (signal.aborted || waiters.length === 0) return undefined;
    if (options.channels && !options.channels().includes(channel)) return undefined;
    const waiter = waiters.shift()!;
    // Its poll timer must not wake it meanwhile: the row given to it would then wait for its lease to run out.
    waiter.reserved = true;
    return {
      give: (item) => waiter.wake(item),
      release: () => {
        announced++;
        waiter.wake("announced");
      },
    };
  };

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
    let woken: Reason | "timer" | "busy" = "busy";
    let given: InboxItem | undefined;
    /** Waits for work; a row given with the wake is kept for the next turn of the loop. */
    const wait = async (): Promise<Reason | "timer"> => {
      const how = await waitForWork();
      if (typeof how !== "object") return how;
      given = how;
      return "announced";
    };
    while (!signal.aborted) {
      const announcedBefore = announced;
      let item: InboxItem | null = given ?? null;
      given = undefined;
      if (!item) {
        try {
          item = await inbox.claim(options.channels?.());
          failures = 0;
        } catch (error) {
          failures++;
          const backoff = Math.min(30_000, 250 * 2 ** Math.min(failures, 7));
          if (failures === 1 || failures % 10 === 0) log.error({ err: error, worker: n, backoffMs: backoff }, "cannot claim work from the inbox");
          await idle(backoff);
          continue;
        }
      }
      if (!item) {
        woken = await wait();
        continue;
      }
      const backlog = woken === "timer" || woken === "found";
      if (backlog) wakeOne("found");
      woken = "busy";
      try {
        await work(item);
      } catch (error) {
        // handle() has its own boundary; reaching here means even recording the outcome failed (database down).
        // The row keeps its lease and is claimed again when it runs out.
        log.error({ err: error, inboxId: item.id }, "message handling failed; it will be retried after its lease");
      }
      // Claim again at once only where more work may wait: rows announced while this one was handled (one of them
      // may have waited behind it, the next message of its chat), or a backlog found by polling. Otherwise a claim
      // would find nothing, on most messages: wait for the next announcement, or the polling worker's timer.
      if (!backlog && announced === announcedBefore && !signal.aborted) woken = await wait();
    }
    // Stopping with a row given but not started: it waits for the next process (or this one's restart).
    if (given) await inbox.retryLater(given.id, "stopped before it was answered", 0).catch((error: unknown) => log.warn({ err: error }, "could not release a row"));
  };

  const done = Promise.all(Array.from({ length: concurrency }, (_, n) => loop(n))).then(() => undefined);
  return {
    wake: () => {
      announced++;
      wakeOne("announced");
    },
    reserve,
    done,
  };
}
