/**
 * Password checks across all addresses, at a bounded rate: a token bucket of `burst` checks refilled at `perSecond`.
 * Beyond it an attempt is not refused but waits its turn, so guessing from many addresses is slowed to the rate while
 * a right password from anyone still gets checked. Each address has one attempt in the queue or being checked at a
 * time. Addresses in good standing (fewer recent failures) go first; when `maxWaiting` attempts wait, a newcomer in
 * better standing takes the place of the worst one waiting, otherwise it is turned away. A waiting attempt whose
 * client went away is dropped without being checked.
 */

export type QueueOutcome<T> =
  | { type: "checked"; value: T }
  /** This address already has an attempt waiting or being checked. */
  | { type: "busy" }
  /** Too many attempts wait; try again later. */
  | { type: "full" }
  /** The client went away before its turn. */
  | { type: "gone" };

export interface CheckQueue {
  /** Runs `check` when its turn comes; `standing` is the address's recent failures (lower goes first). */
  run<T>(key: string, standing: number, signal: AbortSignal, check: () => Promise<T>): Promise<QueueOutcome<T>>;
}

export interface CheckQueueOptions {
  perSecond: number;
  burst: number;
  maxWaiting: number;
  now?: () => number;
}

interface Waiting {
  key: string;
  standing: number;
  arrival: number;
  start(): void;
  turnAway(outcome: { type: "full" | "gone" }): void;
}

export function createCheckQueue(options: CheckQueueOptions): CheckQueue {
  const now = options.now ?? Date.now;
  const active = new Set<string>();
  const waiting: Waiting[] = [];
  let tokens = options.burst;
  let refilledAt = now();
  let arrivals = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const refill = () => {
    const at = now();
    tokens = Math.min(options.burst, tokens + ((at - refilledAt) / 1000) * options.perSecond);
    refilledAt = at;
  };
  /** Lowest standing first, then first come. */
  const before = (a: Waiting, b: Waiting) => a.standing - b.standing || a.arrival - b.arrival;

  const pump = () => {
    refill();
    while (waiting.length > 0 && tokens >= 1) {
      tokens -= 1;
      let best = 0;
      for (let i = 1; i < waiting.length; i++) if (before(waiting[i]!, waiting[best]!) < 0) best = i;
      waiting.splice(best, 1)[0]!.start();
    }
    if (waiting.length > 0 && timer === undefined) {
      timer = setTimeout(() => {
        timer = undefined;
        pump();
      }, Math.ceil(((1 - tokens) / options.perSecond) * 1000));
      timer.unref?.();
    }
  };

  return {
    run(key, standing, signal, check) {
      if (active.has(key)) return Promise.resolve({ type: "busy" });
      if (signal.aborted) return Promise.resolve({ type: "gone" });
      return new Promise((resolve, reject) => {
        const entry: Waiting = {
          key,
          standing,
          arrival: arrivals++,
          start() {
            signal.removeEventListener("abort", onAbort);
            check().then(
              (value) => {
                active.delete(key);
                resolve({ type: "checked", value });
              },
              (error: unknown) => {
                active.delete(key);
                reject(error);
              },
            );
          },
          turnAway(outcome) {
            signal.removeEventListener("abort", onAbort);
            active.delete(key);
            resolve(outcome);
          },
        };
        const onAbort = () => {
          const index = waiting.indexOf(entry);
          if (index !== -1) {
            waiting.splice(index, 1);
            entry.turnAway({ type: "gone" });
          }
        };
        if (waiting.length >= options.maxWaiting) {
          let worst = 0;
          for (let i = 1; i < waiting.length; i++) if (before(waiting[i]!, waiting[worst]!) > 0) worst = i;
          if (before(entry, waiting[worst]!) >= 0) {
            resolve({ type: "full" });
            return;
          }
          waiting.splice(worst, 1)[0]!.turnAway({ type: "full" });
        }
        active.add(key);
        signal.addEventListener("abort", onAbort, { once: true });
        waiting.push(entry);
        pump();
      });
    },
  };
}
