import type { Transformer } from "grammy";
import type { GrammySignal } from "./signal.ts";

/**
 * Telegram's 429 pauses the whole bot token, not one chat: once a call is answered with `retry_after`, no further
 * call for this bot goes out before that time has passed (getUpdates excepted: receiving is not what is limited).
 * Installed innermost, under the throttler and auto-retry, so it holds back every call, "typing…" included. The
 * pause is this process's; processes sharing a bot share the throttler's pace through Redis, not this pause. A call
 * that would wait longer than `maxWaitMs` (auto-retry's limit) is answered with a 429 at once, so the conversation
 * service reschedules the message instead of holding a worker.
 */
export function floodWait(options: { maxWaitMs?: number; now?: () => number } = {}): Transformer {
  const now = options.now ?? Date.now;
  const maxWaitMs = options.maxWaitMs ?? 60_000;
  let until = 0;
  return async (prev, method, payload, signal) => {
    if (method !== "getUpdates") {
      const wait = until - now();
      if (wait > maxWaitMs) {
        // Longer than a caller should be held: answered as Telegram would, without asking it (RateLimitedError).
        const seconds = Math.ceil(wait / 1000);
        return { ok: false, error_code: 429, description: `Too Many Requests: retry after ${seconds}`, parameters: { retry_after: seconds } };
      }
      for (let left = wait; left > 0; left = until - now()) await sleep(left, signal);
    }
    const result = await prev(method, payload, signal);
    const retryAfter = result.ok ? undefined : result.parameters?.retry_after;
    if (typeof retryAfter === "number" && retryAfter > 0) until = Math.max(until, now() + retryAfter * 1000);
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
