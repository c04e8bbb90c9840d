import { GrammyError, HttpError } from "grammy";
import { DeliveryError, RateLimitedError, RefusedInputError, errorMessage } from "../../src/core/errors.ts";

/**
 * The one place Telegram errors become Parley's errors. Messages never carry the bot token: grammY's own messages
 * do not, but the network errors it wraps (node-fetch) quote the request URL, which contains the token, so those
 * are never passed on as `cause` and every message is redacted once more on the way out.
 */
export function toChannelError(error: unknown, token: string): Error {
  if (error instanceof RateLimitedError || error instanceof DeliveryError || error instanceof RefusedInputError) {
    return error;
  }
  if (error instanceof GrammyError) {
    const message = redact(`Telegram ${error.method} failed (${error.error_code}: ${error.description})`, token);
    if (error.error_code === 429) {
      return new RateLimitedError(message, (error.parameters.retry_after ?? 1) * 1000, { cause: error });
    }
    // 5xx: Telegram's side; everything else (400 bad request, 403 blocked or kicked, 401/404 token) will fail again.
    return new DeliveryError(message, error.error_code >= 500, { cause: error });
  }
  if (error instanceof HttpError) {
    return new DeliveryError(redact(`${error.message} Telegram could not be reached.`, token), true);
  }
  if (isAbort(error)) return new DeliveryError("the request to Telegram was cancelled", true);
  return new DeliveryError(redact(`Telegram call failed: ${errorMessage(error)}`, token), false);
}

/** A log-safe summary of any error: its name and redacted message, never the object (grammY contexts hold the token). */
export function describeError(error: unknown, token: string): { type: string; message: string } {
  const type = error instanceof Error ? error.name : typeof error;
  return { type, message: redact(errorMessage(error), token) };
}

/** Removes the token and anything that looks like a bot token or a Bot API URL path. */
export function redact(text: string, token: string): string {
  let out = token === "" ? text : text.split(token).join("<token>");
  out = out.replace(/\b\d{5,}:[A-Za-z0-9_-]{30,}\b/g, "<token>");
  return out.replace(/\/(file\/)?bot[^/\s]+\//g, "/$1bot<token>/");
}

export function isParseEntitiesError(error: unknown): boolean {
  return error instanceof GrammyError && error.error_code === 400 && /can't parse entities/i.test(error.description);
}

export function isNotModifiedError(error: unknown): boolean {
  return error instanceof GrammyError && error.error_code === 400 && /message is not modified/i.test(error.description);
}

/** 401 (and 404, which Telegram answers for a malformed token): the token itself is wrong. */
export function isTokenRejected(error: unknown): boolean {
  return error instanceof GrammyError && (error.error_code === 401 || error.error_code === 404);
}

/** Errors worth retrying later: network failures, Telegram's 5xx and 429. */
export function isTransient(error: unknown): boolean {
  if (error instanceof HttpError) return true;
  return error instanceof GrammyError && (error.error_code >= 500 || error.error_code === 429);
}

export function isAbort(error: unknown): boolean {
  return error instanceof Error && (error.name === "AbortError" || error.name === "TimeoutError");
}
