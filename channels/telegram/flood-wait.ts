import type { Transformer } from "grammy";
import type { GrammySignal } from "./signal.ts";

/**
 * Where a bot's 429 pause is kept. Local by default; several processes that send for one bot pass one that they
 * share (src/cluster/shared-pause.ts keeps it in Redis), so a 429 answered to one of them holds back all of them.
 */
export interface PauseStore {
  /** The time (ms since the epoch, this process's clock) before which no call may go out; in the past when not
   * paused. Asked before every call, so it must answer at once, without I/O. */
  pausedUntil(): number;
  /** Telegram asked for `retryAfterMs` of quiet from now. Only ever moves the pause later; never throws. */
  pause(retryAfterMs: number): void;
}

/** The pause of this process alone. */
export function localPause(now: () => number = Date.now): PauseStore {
  let until = 0;
  return {
    pausedUntil: () => until,
    pause(retryAfterMs) {
      until = Math.max(until, now() + retryAfterMs);
    },
  };
}

/**
 * Telegram's 429 pauses the whole bot token, not one chat: once a call is answered with `retry_after`, no further
 * call for this bot goes out before that time has passed (getUpdates excepted: receiving is not what is limited).
 * Installed innermost, under the throttler and auto-retry, so it holds back every call, "typing…" included. The
 * pause lives in `store`: this process's by default, shared by every process of the bot when one is passed. A call
 * that would wait longer than `maxWaitMs` (auto-retry's limit) is answered with a 429 at once, so the conversation
 * service reschedules the message instead of holding a worker.
 */
export function floodWait(options: { maxWaitMs?: number; now?: () => number; store?: PauseStore } = {}): Transformer {
  const now = options.now ?? Date.now;
  const maxWaitMs = options.maxWaitMs ?? 60_000;
  const store = options.store ?? localPause(now);
  return async (prev, method, payload, signal) => {
    if (method !== "getUpdates") {
      const wait = store.pausedUntil() - now();
      if (wait > maxWaitMs) {
        // Longer than a caller should be held: answered as Telegram would, without asking it (RateLimitedError).
        const seconds = Math.ceil(wait / 1000);
        return { ok: false, error_code: 429, description: `Too Many Requests: retry after ${seconds}`, parameters: { retry_after: seconds } };
      }
      // Asked again after each sleep: another process may have moved the pause later meanwhile.
      for (let left = wait; left > 0; left = store.pausedUntil() - now()) await sleep(left, signal);
    }
    const result = await prev(method, payload, signal);
    const retryAfter = result.ok ? undefined : result.parameters?.retry_after;
    if (typeof retryAfter === "number" && retryAfter > 0) store.pause(retryAfter * 1000);
    return result;
  };
}

function sleep(ms: number, signal: GrammySignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Error("Request aborted while waiting out Telegram's flood limit"));
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", abort);
      resolve();
    }
    function abort() {
      clearTimeout(timer);
      reject(new Error("Request aborted while waiting out Telegram's flood limit"));
    }
    signal?.addEventListener("abort", abort);
  });
}
