/**
 * Counts per key in fixed windows (a visitor's address, a visitor's identity): `take` says whether one more is
 * allowed, and when to try again if not. In memory, per process; at most `maxKeys` keys are remembered, the least
 * recently counted going first, so a flood of addresses cannot grow it without bound.
 */

export type Take = { ok: true } | { ok: false; retryAfterMs: number };

export interface WindowLimiter {
  take(key: string): Take;
}

export function createWindowLimiter(options: { limit: number; windowMs: number; now: () => number; maxKeys?: number }): WindowLimiter {
  const { limit, windowMs, now, maxKeys = 10_000 } = options;
  const windows = new Map<string, { start: number; count: number }>();
  return {
    take(key) {
      const at = now();
      let window = windows.get(key);
      windows.delete(key);
      if (!window || at - window.start >= windowMs) window = { start: at, count: 0 };
      windows.set(key, window);
      while (windows.size > maxKeys) windows.delete(windows.keys().next().value as string);
      if (window.count >= limit) return { ok: false, retryAfterMs: window.start + windowMs - at };
      window.count += 1;
      return { ok: true };
    },
  };
}
