import { APICallError, type ModelMessage, RetryError, streamText } from "ai";
import type { ModelRef } from "../config.ts";
import type { Logger } from "../observability/logger.ts";
import { costOf } from "./capabilities.ts";
import type { ModelFactory } from "./registry.ts";

/**
 * Calls the first model of a chain that answers. Retryable failures (timeouts, 408, 409, 429, 5xx) are retried by
 * the AI SDK with backoff before the first byte; anything that still fails moves on to the next entry of the chain.
 * If text had already been streamed when a model failed, `onReset` tells the caller to forget it before the next
 * model starts over. Every attempt is recorded.
 */

export interface CallTrace {
  purpose: "answer" | "summary";
  inboxId?: number;
  userKey?: string;
  mode?: string;
}

export interface CallRecord extends CallTrace {
  provider: string;
  model: string;
  startedAt: Date;
  latencyMs: number;
  firstTokenMs?: number;
  tokensIn?: number;
  tokensOut?: number;
  costUsd?: number;
  ok: boolean;
  error?: string;
}

export interface ModelRequest {
  system: string;
  messages: ModelMessage[];
  signal: AbortSignal;
  trace: CallTrace;
  onDelta?: (text: string) => void;
  onReset?: () => void;
}

export interface ModelAnswer {
  text: string;
  ref: ModelRef;
  tokensIn?: number;
  tokensOut?: number;
}

export interface ModelRouter {
  readonly chain: readonly ModelRef[];
  stream(request: ModelRequest): Promise<ModelAnswer>;
}

/** No entry of the chain could answer. `message` names each model and why, without credentials. */
export class ModelUnavailableError extends Error {
  override readonly name = "ModelUnavailableError";
  constructor(readonly failures: Array<{ ref: ModelRef; error: string }>) {
    super(`no model could answer: ${failures.map((f) => `${f.ref.provider}:${f.ref.model} (${f.error})`).join("; ")}`);
  }
}

export interface RouterOptions {
  chain: readonly ModelRef[];
  models: ModelFactory;
  record: (call: CallRecord) => Promise<void>;
  timeoutMs: number;
  log: Logger;
  maxRetries?: number;
}

export function createRouter(options: RouterOptions): ModelRouter {
  const { chain, models, record, timeoutMs, log } = options;
  const maxRetries = options.maxRetries ?? 2;

  const attempt = async (ref: ModelRef, request: ModelRequest, emitted: { any: boolean }): Promise<ModelAnswer> => {
    const startedAt = new Date();
    const started = performance.now();
    let firstTokenMs: number | undefined;
    let text = "";
    let tokensIn: number | undefined;
    let tokensOut: number | undefined;
    const base = { ...request.trace, provider: ref.provider, model: ref.model, startedAt };
    try {
      const result = streamText({
        model: models(ref),
        system: request.system,
        messages: request.messages,
        abortSignal: AbortSignal.any([request.signal, AbortSignal.timeout(timeoutMs)]),
        maxRetries,
        // Errors are read from the stream below; the SDK's default handler would print them (and the provider's
        // message, which may quote a key) to the console.
        onError: () => {},
      });
      for await (const part of result.fullStream) {
        if (part.type === "text-delta") {
          if (part.text === "") continue;
          firstTokenMs ??= Math.round(performance.now() - started);
          text += part.text;
          emitted.any = true;
          request.onDelta?.(part.text);
        } else if (part.type === "error") {
          throw part.error;
        } else if (part.type === "abort") {
          throw request.signal.aborted ? request.signal.reason : new Error(`timed out after ${timeoutMs / 1000} s`);
        } else if (part.type === "finish") {
          tokensIn = part.totalUsage.inputTokens;
          tokensOut = part.totalUsage.outputTokens;
        }
      }
      if (text.trim() === "") throw new Error("the model returned an empty answer");
      await record({
        ...base,
        latencyMs: Math.round(performance.now() - started),
        firstTokenMs,
        tokensIn,
        tokensOut,
        costUsd: costOf(ref, tokensIn ?? 0, tokensOut ?? 0),
        ok: true,
      });
      return { text, ref, tokensIn, tokensOut };
    } catch (error) {
      const reason = describeModelError(error, request.signal, timeoutMs);
      await record({ ...base, latencyMs: Math.round(performance.now() - started), firstTokenMs, ok: false, error: reason }).catch(
        (recordError: unknown) => log.warn({ err: recordError }, "could not record a failed model call"),
      );
      throw new AttemptFailed(reason, { cause: error });
    }
  };

  return {
    chain,
    async stream(request) {
      const failures: Array<{ ref: ModelRef; error: string }> = [];
      for (const ref of chain) {
        const emitted = { any: false };
        try {
          return await attempt(ref, request, emitted);
        } catch (error) {
          if (request.signal.aborted) throw request.signal.reason ?? error;
          const reason = error instanceof AttemptFailed ? error.message : String(error);
          failures.push({ ref, error: reason });
          log.warn({ provider: ref.provider, model: ref.model, reason, purpose: request.trace.purpose }, "model call failed; trying the next in the chain");
          if (emitted.any) request.onReset?.();
        }
      }
      throw new ModelUnavailableError(failures);
    },
  };
}

class AttemptFailed extends Error {}

/** A short reason for logs, the admin page and the user: the status and the provider's message, never a header. */
export function describeModelError(error: unknown, signal: AbortSignal, timeoutMs: number): string {
  if (signal.aborted) return "cancelled";
  if (RetryError.isInstance(error)) return `${describeModelError(error.lastError, signal, timeoutMs)} after ${error.errors.length} tries`;
  if (APICallError.isInstance(error)) {
    return `HTTP ${error.statusCode ?? "error"}: ${truncate(error.message, 200)}`;
  }
  if (error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError")) {
    return `timed out after ${timeoutMs / 1000} s`;
  }
  return truncate(error instanceof Error ? error.message : String(error), 200);
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
