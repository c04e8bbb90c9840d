import { safeMessage } from "./safe-error.ts";

/**
 * Errors that cross a boundary carry a verdict: may the same operation succeed if tried again later?
 * Each channel maps its platform's errors to these in one function; the conversation service only reads them.
 */

/** The platform asked us to slow down; nothing should be sent to it before `retryAfterMs` has passed. */
export class RateLimitedError extends Error {
  override readonly name = "RateLimitedError";
  constructor(
    message: string,
    readonly retryAfterMs: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A send or fetch failed; `retryable` says whether trying again later may help. */
export class DeliveryError extends Error {
  override readonly name = "DeliveryError";
  constructor(
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** An input the user sent cannot be used (too large, wrong type, …). `userMessage` is safe to show them. */
export class RefusedInputError extends Error {
  override readonly name = "RefusedInputError";
  constructor(readonly userMessage: string, options?: { cause?: unknown }) {
    super(userMessage, options);
  }
}

/** An error as text, safe to log or store: no message content, no database values (see ./safe-error.ts). */
export function errorMessage(error: unknown): string {
  return safeMessage(error);
}
