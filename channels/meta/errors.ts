import { DeliveryError, RateLimitedError, errorMessage } from "../../src/core/errors.ts";

/**
 * The one place a Graph API failure becomes Parley's error. Graph answers errors as
 * `{"error":{"message","type","code","error_subcode","fbtrace_id"}}`; the verdict follows the code:
 *
 * - rate limits (codes 4, 17, 32, 613, 80007, 130429, 131048, 131056, or HTTP 429) → RateLimitedError, waiting what
 *   `Retry-After` or `X-Business-Use-Case-Usage` says, else a minute;
 * - the 24-hour window closed (WhatsApp 131047, Messenger 10 / 2018278) → final: only a template or a message tag
 *   may be sent now, and Parley sends neither;
 * - the token rejected (190, or HTTP 401) → final, and `tokenRejected` so the channel reports itself failed;
 * - Graph's own trouble (5xx, codes 1, 2, 131000, 131016), the network and timeouts → retryable;
 * - any other 4xx → final (a bad request fails the same way again).
 *
 * Messages name the token's variable, never its value: every text from Graph or the network is redacted.
 */

export type GraphFailure =
  | { kind: "response"; status: number; headers: Headers; body: unknown }
  | { kind: "network"; cause: unknown }
  | { kind: "timeout"; afterMs: number };

export interface GraphErrorContext {
  /** "WhatsApp" or "Messenger", for messages. */
  platform: string;
  /** What was attempted, e.g. "send". */
  operation: string;
  token: string;
  /** The configuration variable that holds the token, e.g. WHATSAPP_CLOUD_TOKEN. */
  tokenVariable: string;
}

export interface MappedGraphError {
  error: DeliveryError | RateLimitedError;
  tokenRejected: boolean;
}

export const RATE_LIMIT_CODES: ReadonlySet<number> = new Set([4, 17, 32, 613, 80007, 130429, 131048, 131056]);
const TRANSIENT_CODES: ReadonlySet<number> = new Set([1, 2, 131000, 131016]);
const TOKEN_REJECTED_CODE = 190;
const WHATSAPP_WINDOW_CLOSED = 131047;
const MESSENGER_WINDOW = { code: 10, subcode: 2018278 };
export const DEFAULT_RETRY_AFTER_MS = 60_000;
const MAX_DETAIL = 300;

interface GraphErrorBody {
  message?: string;
  type?: string;
  code?: number;
  error_subcode?: number;
  fbtrace_id?: string;
}

export function mapGraphError(failure: GraphFailure, context: GraphErrorContext): MappedGraphError {
  const { platform, operation } = context;
  const clean = (text: string) => redactToken(text, context.token);
  if (failure.kind === "timeout") {
    return final(new DeliveryError(`${platform} ${operation}: Graph did not answer within ${failure.afterMs} ms`, true));
  }
  if (failure.kind === "network") {
    return final(new DeliveryError(clean(`${platform} ${operation}: Graph could not be reached (${causeText(failure.cause)})`), true));
  }

  const graph = graphError(failure.body);
  const code = graph?.code;
  const subcode = graph?.error_subcode;
  const detail = clean(
    `HTTP ${failure.status}${code === undefined ? "" : `, Graph error ${code}${subcode === undefined ? "" : `/${subcode}`}`}` +
      `${graph?.message ? `: ${graph.message.slice(0, MAX_DETAIL)}` : ""}${graph?.fbtrace_id ? ` (fbtrace_id ${graph.fbtrace_id})` : ""}`,
  );
  const prefix = `${platform} ${operation} failed`;

  if (failure.status === 429 || (code !== undefined && RATE_LIMIT_CODES.has(code))) {
    return final(new RateLimitedError(`${prefix}: rate limited (${detail})`, retryAfterMs(failure.headers)));
  }
  if (code === WHATSAPP_WINDOW_CLOSED || (code === MESSENGER_WINDOW.code && subcode === MESSENGER_WINDOW.subcode)) {
    return final(
      new DeliveryError(
        `${prefix}: the 24-hour window closed (the user's last message is more than 24 hours old, so only a template or tagged message may be sent) (${detail})`,
        false,
      ),
    );
  }
  if (code === TOKEN_REJECTED_CODE || failure.status === 401) {
    return { error: new DeliveryError(`${prefix}: ${context.tokenVariable} was rejected (${detail})`, false), tokenRejected: true };
  }
  const retryable = failure.status >= 500 || (code !== undefined && TRANSIENT_CODES.has(code));
  return final(new DeliveryError(`${prefix} (${detail})`, retryable));
}

function final(error: DeliveryError | RateLimitedError): MappedGraphError {
  return { error, tokenRejected: false };
}

function graphError(body: unknown): GraphErrorBody | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const error = (body as { error?: unknown }).error;
  if (typeof error !== "object" || error === null) return undefined;
  const e = error as Record<string, unknown>;
  const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : typeof v === "string" && /^\d+$/.test(v) ? Number(v) : undefined);
  const str = (v: unknown) => (typeof v === "string" ? v : undefined);
  const out: GraphErrorBody = {};
  const message = str(e.message);
  const type = str(e.type);
  const code = num(e.code);
  const subcode = num(e.error_subcode);
  const trace = str(e.fbtrace_id);
  if (message !== undefined) out.message = message;
  if (type !== undefined) out.type = type;
  if (code !== undefined) out.code = code;
  if (subcode !== undefined) out.error_subcode = subcode;
  if (trace !== undefined) out.fbtrace_id = trace;
  return out;
}

/**
 * How long to wait: `Retry-After` (seconds or an HTTP date), else the longest `estimated_time_to_regain_access`
 * (minutes) in `X-Business-Use-Case-Usage`, else a minute.
 */
export function retryAfterMs(headers: Headers, now = Date.now()): number {
  const retryAfter = headers.get("retry-after")?.trim();
  if (retryAfter) {
    if (/^\d+(\.\d+)?$/.test(retryAfter)) return Math.max(1_000, Math.ceil(Number(retryAfter) * 1000));
    const at = Date.parse(retryAfter);
    if (Number.isFinite(at)) return Math.max(1_000, at - now);
  }
  const usage = headers.get("x-business-use-case-usage");
  if (usage) {
    try {
      const parsed = JSON.parse(usage) as Record<string, Array<{ estimated_time_to_regain_access?: unknown }>>;
      const minutes = Object.values(parsed)
        .flatMap((entries) => (Array.isArray(entries) ? entries : []))
        .map((entry) => Number(entry?.estimated_time_to_regain_access))
        .filter((m) => Number.isFinite(m) && m > 0);
      if (minutes.length > 0) return Math.max(...minutes) * 60_000;
    } catch {
      // an unreadable header: fall back to the default
    }
  }
  return DEFAULT_RETRY_AFTER_MS;
}

/** Removes the token, and anything shaped like a Meta access token, from a text. */
export function redactToken(text: string, token: string): string {
  const out = token === "" ? text : text.split(token).join("<token>");
  return out.replace(/\bEAA[A-Za-z0-9]{10,}/g, "<token>");
}

/** A log-safe summary of an error: its name and redacted message, never the object. */
export function describeError(error: unknown, token: string): { type: string; message: string } {
  return { type: error instanceof Error ? error.name : typeof error, message: redactToken(errorMessage(error), token) };
}

/** fetch says "fetch failed" and keeps the reason in `cause`. */
export function causeText(error: unknown): string {
  const cause = error instanceof Error && error.cause !== undefined ? `: ${errorMessage(error.cause)}` : "";
  return `${errorMessage(error)}${cause}`;
}
