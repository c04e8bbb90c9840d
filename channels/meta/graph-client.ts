import { DeliveryError, RefusedInputError } from "../../src/core/errors.ts";
import { readResponseCapped } from "../../src/core/read-capped.ts";
import { causeText, mapGraphError, redactToken, type GraphFailure } from "./errors.ts";

/** The Graph API version Parley speaks, chosen once for both channels. */
export const GRAPH_API_ROOT = "https://graph.facebook.com/v23.0";
export const GRAPH_TIMEOUT_MS = 15_000;
/** A file download or upload may take longer than an API call; the caller's signal can end it sooner. */
const TRANSFER_TIMEOUT_MS = 60_000;

export interface GraphClientOptions {
  /** e.g. https://graph.facebook.com/v23.0, without a trailing slash. */
  root: string;
  token: string;
  /** The variable that holds the token, named in errors (e.g. WHATSAPP_CLOUD_TOKEN). */
  tokenVariable: string;
  /** "WhatsApp" or "Messenger", for messages. */
  platform: string;
  fetch: typeof fetch;
  timeoutMs?: number;
  /** Called when Graph rejects the token (error 190): the channel reports itself failed. */
  onTokenRejected(): void;
}

export interface GraphClient {
  /**
   * Calls `{root}{path}` with the token in the Authorization header; resolves with the JSON answer. A `FormData`
   * body is sent as multipart/form-data (a file upload, with the longer transfer timeout); any other body as JSON.
   */
  call(operation: string, method: "GET" | "POST", path: string, body?: unknown, signal?: AbortSignal): Promise<unknown>;
  /**
   * Streams a file, refusing it (RefusedInputError) when its declared length is over `maxBytes` and aborting once
   * more than `maxBytes` arrived. `withToken` adds the Authorization header (WhatsApp media URLs need it; Messenger
   * CDN URLs must not get it).
   */
  download(url: string, maxBytes: number, signal: AbortSignal, withToken: boolean): Promise<Uint8Array>;
}

/**
 * A small Graph HTTP client: JSON in and out, a timeout on every call, errors mapped once (errors.ts). The token
 * travels only in the Authorization header, never in a URL, so no logged URL or error can carry it.
 */
export function createGraphClient(options: GraphClientOptions): GraphClient {
  const { token, platform } = options;
  const root = options.root.replace(/\/+$/, "");
  const timeoutMs = options.timeoutMs ?? GRAPH_TIMEOUT_MS;
  const auth = { authorization: `Bearer ${token}` };

  const fail = (operation: string, failure: GraphFailure): never => {
    const mapped = mapGraphError(failure, { platform, operation, token, tokenVariable: options.tokenVariable });
    if (mapped.tokenRejected) options.onTokenRejected();
    throw mapped.error;
  };

  /** fetch with the timeout; a caller's abort is passed on as it is, everything else becomes a mapped error. */
  async function request(
    operation: string,
    url: string,
    init: RequestInit,
    signal: AbortSignal | undefined,
    limitMs = timeoutMs,
  ): Promise<Response> {
    const timeout = AbortSignal.timeout(limitMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    try {
      return await options.fetch(url, { ...init, signal: combined });
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (timeout.aborted) return fail(operation, { kind: "timeout", afterMs: limitMs });
      return fail(operation, { kind: "network", cause: error });
    }
  }

  return {
    async call(operation, method, path, body, signal) {
      const form = body instanceof FormData;
      const response = await request(
        operation,
        `${root}${path}`,
        {
          method,
          // fetch writes the multipart Content-Type itself, with its boundary.
          headers: { ...auth, accept: "application/json", ...(body === undefined || form ? {} : { "content-type": "application/json" }) },
          ...(body === undefined ? {} : { body: form ? body : JSON.stringify(body) }),
        },
        signal,
        form ? TRANSFER_TIMEOUT_MS : timeoutMs,
      );
      let text: string;
      try {
        text = await response.text();
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        return fail(operation, { kind: "network", cause: error });
      }
      let parsed: unknown;
      try {
        parsed = text === "" ? undefined : JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      const hasError = typeof parsed === "object" && parsed !== null && "error" in parsed;
      if (!response.ok || hasError) {
        return fail(operation, { kind: "response", status: response.ok ? 400 : response.status, headers: response.headers, body: parsed });
      }
      if (parsed === undefined) {
        throw new DeliveryError(`${platform} ${operation}: Graph answered HTTP ${response.status} without JSON`, true);
      }
      return parsed;
    },

    async download(url, maxBytes, signal, withToken) {
      let parsed: URL;
      try {
        parsed = new URL(url);
      } catch {
        throw new DeliveryError(`${platform} download: the attachment has no valid URL`, false);
      }
      if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
        throw new DeliveryError(`${platform} download: only http(s) URLs are fetched, not ${parsed.protocol}`, false);
      }
      const response = await request("download", parsed.href, { headers: withToken ? auth : {} }, signal, TRANSFER_TIMEOUT_MS);
      if (!response.ok || !response.body) {
        await response.body?.cancel().catch(() => {});
        if (response.status === 401 && withToken) {
          return fail("download", { kind: "response", status: 401, headers: response.headers, body: undefined });
        }
        throw new DeliveryError(`${platform} download failed with HTTP ${response.status}`, response.status >= 500 || response.status === 429);
      }
      try {
        return await readResponseCapped(response, maxBytes, signal);
      } catch (error) {
        if (error instanceof RefusedInputError) throw error;
        if (signal.aborted) throw signal.reason;
        throw new DeliveryError(redactToken(`${platform} download failed: ${causeText(error)}`, token), true);
      }
    },
  };
}
