import Bottleneck from "../core/bottleneck.ts";
import type { ProviderName } from "./providers.ts";

/**
 * How many calls run at once per provider (PROVIDER_CONCURRENCY, default 4 each), so a burst of contemplations
 * cannot trip a provider's own rate limits. Waiting calls leave in priority order: answers the user is waiting for
 * first, then the final write-up of a contemplation, then its sub-agents, then background summaries.
 */

export interface ConcurrencySettings {
  default: number;
  providers: Partial<Record<ProviderName, number>>;
}

/** Bottleneck priorities: lower runs first. */
export const PRIORITY = { answer: 2, synthesis: 3, agent: 6, summary: 8 } as const;

export interface ProviderLimiters {
  /** Runs `job` when `provider` has a free slot; rejects with the signal's reason if it aborts while waiting. */
  schedule<T>(provider: ProviderName, priority: number, signal: AbortSignal, job: () => Promise<T>): Promise<T>;
  counts(provider: ProviderName): { running: number; queued: number; limit: number };
}

export function createProviderLimiters(settings: ConcurrencySettings): ProviderLimiters {
  const limiters = new Map<ProviderName, Bottleneck>();
  const limitOf = (provider: ProviderName) => settings.providers[provider] ?? settings.default;
  const get = (provider: ProviderName) => {
    let limiter = limiters.get(provider);
    if (!limiter) {
      limiter = new Bottleneck({ maxConcurrent: limitOf(provider) });
      limiters.set(provider, limiter);
    }
    return limiter;
  };
  return {
    schedule<T>(provider: ProviderName, priority: number, signal: AbortSignal, job: () => Promise<T>): Promise<T> {
      signal.throwIfAborted();
      const scheduled = get(provider).schedule({ priority }, async () => {
        // A caller that gave up while waiting frees the slot at once.
        signal.throwIfAborted();
        return job();
      });
      scheduled.catch(() => {});
      return new Promise<T>((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        scheduled.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
      });
    },
    counts(provider) {
      const c = limiters.get(provider)?.counts();
      return { running: (c?.RUNNING ?? 0) + (c?.EXECUTING ?? 0), queued: (c?.QUEUED ?? 0) + (c?.RECEIVED ?? 0), limit: limitOf(provider) };
    },
  };
}
