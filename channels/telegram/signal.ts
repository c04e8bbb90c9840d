import type { Api } from "grammy";

/**
 * grammY and @grammyjs/runner type their AbortSignals as the `abort-controller` polyfill's, and the runner passes
 * polyfill instances at runtime (no `reason`, no `throwIfAborted`). These two functions cross that border.
 */
export type GrammySignal = Parameters<Api["getMe"]>[0];

/** A native signal typed as grammY's: grammY only calls addEventListener/aborted on it, which both share. */
export function toGrammySignal(signal: AbortSignal): GrammySignal {
  return signal as unknown as GrammySignal;
}

/** A native signal that aborts when the polyfill one does. */
export function fromGrammySignal(signal: GrammySignal): AbortSignal {
  const controller = new AbortController();
  if (signal?.aborted) controller.abort();
  else signal?.addEventListener("abort", () => controller.abort());
  return controller.signal;
}
