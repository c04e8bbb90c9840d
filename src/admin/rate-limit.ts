/**
 * Failed sign-ins per client address: after `max` failures within `windowMs`, every attempt from that address is
 * refused until the oldest failure leaves the window; other addresses are not affected. The key is the client's
 * limit key from src/http/client.ts: the socket's peer, or what a TRUST_PROXY hop said, never a header any client
 * can write. The map is capped so a flood of addresses cannot grow memory.
 */

export interface FailureLimiter {
  /** Milliseconds until this client may try again; 0 when it may try now. */
  retryAfterMs(key: string): number;
  /** Failures of this client within the window. */
  failures(key: string): number;
  fail(key: string): void;
  succeed(key: string): void;
}

export interface FailureLimiterOptions {
  max: number;
  windowMs: number;
  maxKeys?: number;
  now?: () => number;
}

export function createFailureLimiter(options: FailureLimiterOptions): FailureLimiter {
  const now = options.now ?? Date.now;
  const maxKeys = options.maxKeys ?? 10_000;
  const failures = new Map<string, number[]>();

  const recent = (key: string, at: number): number[] => {
    const times = (failures.get(key) ?? []).filter((t) => at - t < options.windowMs);
    if (times.length === 0) failures.delete(key);
    else failures.set(key, times);
    return times;
  };

  return {
    retryAfterMs(key) {
      const at = now();
      const times = recent(key, at);
      if (times.length < options.max) return 0;
      return Math.max(1, times[times.length - options.max]! + options.windowMs - at);
    },
    failures(key) {
      return recent(key, now()).length;
    },
    fail(key) {
      const at = now();
      const times = recent(key, at);
      times.push(at);
      if (times.length > options.max) times.splice(0, times.length - options.max);
      failures.delete(key);
      while (failures.size >= maxKeys) failures.delete(failures.keys().next().value as string);
      failures.set(key, times);
    },
    succeed(key) {
      failures.delete(key);
    },
  };
}
