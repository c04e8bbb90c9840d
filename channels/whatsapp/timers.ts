/**
 * Every wait of the WhatsApp channel goes through `Timers`, so the watchdog, the restart backoff and the delivery
 * retries run in tests on a clock the test advances.
 */

export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Node's timers, unref'd: a pending retry never keeps a stopping process alive. */
export const systemTimers: Timers = {
  setTimeout(callback, ms) {
    const handle = setTimeout(callback, ms);
    handle.unref();
    return handle;
  },
  clearTimeout(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};

export type Settled<T> = { kind: "value"; value: T } | { kind: "error"; error: unknown } | { kind: "timeout" };

/** Waits for `promise` at most `ms`; never rejects. A promise that settles later is ignored. */
export function settleWithin<T>(timers: Timers, promise: Promise<T>, ms: number): Promise<Settled<T>> {
  return new Promise((resolve) => {
    const timer = timers.setTimeout(() => resolve({ kind: "timeout" }), ms);
    promise.then(
      (value) => {
        timers.clearTimeout(timer);
        resolve({ kind: "value", value });
      },
      (error: unknown) => {
        timers.clearTimeout(timer);
        resolve({ kind: "error", error });
      },
    );
  });
}

/** Resolves after `ms`, or at once (without rejecting) when `signal` aborts. */
export function pause(timers: Timers, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      timers.clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = timers.setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

export interface Backoff {
  initialMs: number;
  maxMs: number;
}

/**
 * Capped exponential backoff with jitter: the `attempt`-th wait (0-based) is between half and all of
 * min(max, initial·2^attempt). `random` returns [0, 1).
 */
export function backoffDelay(attempt: number, backoff: Backoff, random: () => number): number {
  const ceiling = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
