/**
 * A circuit breaker for one provider. Closed: calls go through and consecutive failures are counted. After
 * `failureThreshold` of them it opens: the provider is skipped until the cool-down ends. Then it is half-open: one
 * trial call goes through (others still skip it); success closes it and resets the cool-down, failure opens it again
 * for twice as long, up to `maxCooldownMs`. Pure state with an injected clock; transitions are reported.
 */

export type BreakerState = "closed" | "open" | "half-open";

export interface BreakerSettings {
  failureThreshold: number;
  cooldownMs: number;
  maxCooldownMs: number;
}

export interface BreakerSnapshot {
  state: BreakerState;
  consecutiveFailures: number;
  /** While open: when the next trial call may go through. */
  openUntil?: number;
  /** The cool-down the next opening will use (doubles after a failed trial). */
  cooldownMs: number;
  lastError?: string;
  /** When the state last changed. */
  since: number;
}

export type Admission = { type: "call"; trial: boolean } | { type: "skip"; openUntil: number };

export interface CircuitBreaker {
  admit(): Admission;
  /** The provider answered (a request-specific refusal such as a 400 counts: the provider is up). */
  success(trial: boolean): void;
  failure(reason: string, trial: boolean): void;
  /** A trial call ended without a verdict (cancelled by the caller): the next call may try again. */
  release(trial: boolean): void;
  snapshot(): BreakerSnapshot;
}

export function createBreaker(
  settings: BreakerSettings,
  now: () => number,
  onTransition: (from: BreakerState, to: BreakerState, snapshot: BreakerSnapshot) => void = () => {},
): CircuitBreaker {
  let state: BreakerState = "closed";
  let failures = 0;
  let openUntil = 0;
  let cooldownMs = settings.cooldownMs;
  let trialInFlight = false;
  let lastError: string | undefined;
  let since = now();

  const snapshot = (): BreakerSnapshot => ({
    // An open breaker whose cool-down is over lets the next call through as a trial.
    state: state === "open" && now() >= openUntil ? "half-open" : state,
    consecutiveFailures: failures,
    openUntil: state === "open" ? openUntil : undefined,
    cooldownMs,
    lastError,
    since,
  });

  const move = (to: BreakerState) => {
    if (to === state) return;
    const from = state;
    state = to;
    since = now();
    onTransition(from, to, snapshot());
  };

  const open = () => {
    openUntil = now() + cooldownMs;
    move("open");
  };

  return {
    admit() {
      if (state === "closed") return { type: "call", trial: false };
      if (state === "open") {
        if (now() < openUntil) return { type: "skip", openUntil };
        move("half-open");
      }
      if (trialInFlight) return { type: "skip", openUntil: now() };
      trialInFlight = true;
      return { type: "call", trial: true };
    },
    success(trial) {
      if (trial) trialInFlight = false;
      failures = 0;
      if (state !== "closed") {
        cooldownMs = settings.cooldownMs;
        move("closed");
      }
    },
    failure(reason, trial) {
      lastError = reason;
      failures++;
      if (trial) {
        trialInFlight = false;
        cooldownMs = Math.min(settings.maxCooldownMs, cooldownMs * 2);
        open();
      } else if (state === "closed" && failures >= settings.failureThreshold) {
        open();
      }
    },
    release(trial) {
      if (trial) trialInFlight = false;
    },
    snapshot,
  };
}
