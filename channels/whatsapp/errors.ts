import { DeliveryError, RateLimitedError, RefusedInputError, errorMessage } from "../../src/core/errors.ts";

/**
 * The one place whatsapp-web.js errors become Parley's errors. The library drives a browser page, so most of its
 * failures are the page being reloaded, closed or not ready yet (puppeteer protocol errors, "Evaluation failed",
 * TypeErrors from a WhatsApp Web that changed): those may work after a reconnect and are retryable. What cannot
 * work again is a chat id WhatsApp does not know or a message that is gone. The library sometimes throws strings.
 */
export function toWhatsAppError(error: unknown, operation: string): Error {
  if (error instanceof DeliveryError || error instanceof RateLimitedError || error instanceof RefusedInputError) {
    return error;
  }
  const text = errorMessage(error);
  if (PERMANENT.some((pattern) => pattern.test(text))) {
    return new DeliveryError(`WhatsApp ${operation} failed for good: ${text}`, false, { cause: error });
  }
  if (RATE_LIMITED.test(text)) {
    return new RateLimitedError(`WhatsApp ${operation} was rate limited: ${text}`, 60_000, { cause: error });
  }
  const hint = PAGE_GONE.some((pattern) => pattern.test(text)) ? " (WhatsApp Web was reloading or closed)" : "";
  return new DeliveryError(`WhatsApp ${operation} failed${hint}: ${text}`, true, { cause: error });
}

/** A chat or message that does not exist: trying again cannot help. */
const PERMANENT = [
  /invalid wid|wid error/i,
  /no lid for user/i,
  /invalid serialized message id/i,
  /invalid (chat|message) ?id/i,
  /not a (valid )?whatsapp (user|number)/i,
  /invalid usage/i,
];

const RATE_LIMITED = /rate.?overlimit|\b429\b|too many requests/i;

/** The page behind the client is gone or not ready; a restart of the client is under way or will be. */
const PAGE_GONE = [
  /protocol error/i,
  /execution context was destroyed/i,
  /target closed|session closed|browser has disconnected/i,
  /detached frame|navigating frame was detached/i,
  /cannot read properties of (null|undefined)/i,
];

/** Whether an error from the client means its browser page is gone, so the watchdog should look at once. */
export function isPageGone(error: unknown): boolean {
  const text = errorMessage(error);
  return PAGE_GONE.slice(0, 4).some((pattern) => pattern.test(text));
}
