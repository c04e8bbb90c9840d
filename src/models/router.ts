import { setTimeout as delay } from "node:timers/promises";
import { APICallError, type LanguageModel, type ModelMessage, RetryError, stepCountIs, streamText, type ToolSet } from "ai";
import { asLanguageModelUsage, convertToLanguageModelPrompt, prepareCallSettings, standardizePrompt } from "ai/internal";
import { errorMessage } from "../core/errors.ts";
import type { Logger } from "../observability/logger.ts";
import { createBreaker, type BreakerSettings, type BreakerState, type CircuitBreaker } from "./breaker.ts";
import { capabilityLookup, type CapabilityLookup, type CapabilityOverride } from "./capabilities.ts";
import { costLookup, type CostOverride } from "./costs.ts";
import { createProviderLimiters, PRIORITY, type ConcurrencySettings } from "./limits.ts";
import { refId, type ModelRef, type ProviderName } from "./providers.ts";
import { callShape } from "./reasoning.ts";
import { stripTemplateTokens, stripTemplateTokensFrom } from "./template-tokens.ts";
import type { ModelFactory, ProviderTools } from "./registry.ts";

/**
 * Calls the first model of a chain that can take the request and answers.
 *
 * - Only models whose capabilities fit (`requires.images`, `requires.tools`) are tried; when none in the chain fits,
 *   the other configured models are; when none at all fits, NoCapableModelError says which capability is missing.
 * - Retryable failures (timeouts, 408, 409, 429, 5xx, a connection or stream that dies before any text reached the
 *   user) are tried again on the same model, after `retry-after` when the provider sends one (a wait longer than
 *   `maxRetryAfterMs` moves on instead) or an exponential backoff. Anything else moves to the next entry.
 * - A circuit breaker per provider skips a provider after repeated failures (see breaker.ts); `health()` shows them.
 * - A limiter per provider bounds concurrent calls, answers before contemplation sub-agents (see limits.ts).
 * - Tools go only to models that take tools; reasoning options only to models that reason (see reasoning.ts). A
 *   provider's own server-side tools (Meta's web search) go to its models' answers and sub-agents, and the sources
 *   they cite come back with the answer.
 * - Self-hosted servers (ollama, openai-compatible) get the prompt without chat-template tokens (template-tokens.ts).
 *
 * If text had already been streamed when a model failed, `onReset` tells the caller to forget it before the next
 * model starts over. Every entry tried is recorded once (its retries included), with reasoning text and tool calls.
 */

export type CallPurpose = "answer" | "summary" | "agent" | "synthesis";

export interface CallTrace {
  purpose: CallPurpose;
  inboxId?: number;
  userKey?: string;
  mode?: string;
  /** The contemplation this call belongs to (a model_calls row). */
  parentId?: number;
}

/** One tool call the model made during a call. */
export interface ToolUse {
  name: string;
  input: unknown;
  outputChars?: number;
  error?: string;
  /** The pages a provider-run search found (Meta's web search). */
  sources?: string[];
}

/** A page the answer cites, from the provider's own web search. */
export interface Source {
  url: string;
  title?: string;
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
  reasoning?: string;
  tools?: ToolUse[];
}

export interface ModelRequirements {
  images?: boolean;
  tools?: boolean;
}

export interface ModelRequest {
  system: string;
  messages: ModelMessage[];
  signal: AbortSignal;
  trace: CallTrace;
  /** The chain to try; default the router's (instant) chain. */
  chain?: readonly ModelRef[];
  requires?: ModelRequirements;
  /** Ask for high reasoning effort from models that support it. */
  reasoning?: boolean;
  /** Cap on the answer's tokens (a reasoning budget comes on top); default the router's. */
  maxOutputTokens?: number;
  /** Offered to models whose capability says tools, with at most `maxSteps` steps. */
  tools?: ToolSet;
  maxSteps?: number;
  onDelta?: (text: string) => void;
  onReset?: () => void;
}

export interface ModelAnswer {
  text: string;
  ref: ModelRef;
  tokensIn?: number;
  tokensOut?: number;
  costUsd?: number;
  reasoning?: string;
  /** Pages the answer cites (from a provider's web search), in the order first cited. */
  sources?: Source[];
}

/** A provider's state as the admin page shows it. */
export interface ProviderHealth {
  provider: ProviderName;
  state: BreakerState;
  consecutiveFailures: number;
  /** While open: when the next trial call may go through. */
  openUntil?: Date;
  cooldownMs: number;
  lastError?: string;
  /** When the state last changed. */
  since: Date;
  running: number;
  queued: number;
  concurrency: number;
}

export interface ModelRouter {
  /** The default (instant) chain. */
  readonly chain: readonly ModelRef[];
  readonly capabilities: CapabilityLookup;
  stream(request: ModelRequest): Promise<ModelAnswer>;
  /** Per provider of any configured chain: circuit breaker state and limiter load. */
  health(): ProviderHealth[];
  /** Resolves once the records of the calls answered so far are written (they are not waited for by `stream`). */
  recorded(): Promise<void>;
}

/** No entry of the chain could answer. `message` names each model and why, without credentials. */
export class ModelUnavailableError extends Error {
  override readonly name = "ModelUnavailableError";
  constructor(readonly failures: Array<{ ref: ModelRef; error: string }>) {
    super(`no model could answer: ${failures.map((f) => `${refId(f.ref)} (${f.error})`).join("; ")}`);
  }
}

/** No configured model has a capability the request needs (e.g. images). */
export class NoCapableModelError extends Error {
  override readonly name = "NoCapableModelError";
  constructor(readonly requirement: keyof ModelRequirements) {
    super(`no configured model can take ${requirement}`);
  }
}

export interface RouterClock {
  now(): number;
  /** Resolves after `ms`; rejects when `signal` aborts first. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export interface RouterOptions {
  chain: readonly ModelRef[];
  /** Every configured model, where a request looks when no model of its chain has what it requires. */
  pool?: readonly ModelRef[];
  models: ModelFactory;
  /** Tools a provider runs itself (see registry.ts), offered to its models beside the request's tools. */
  providerTools?: ProviderTools;
  record: (call: CallRecord) => Promise<unknown>;
  log: Logger;
  /** Longest a single try may take, stream included. */
  timeoutMs: number;
  /** Tries after the first on the same model, for retryable failures. Default 2. */
  retries?: number;
  /** First backoff when the provider gives no retry-after; doubles per try. Default 1 s. */
  retryDelayMs?: number;
  /** A retry-after longer than this moves to the next model instead of waiting. Default 30 s. */
  maxRetryAfterMs?: number;
  maxOutputTokens?: number;
  thinkingBudgetTokens?: number;
  capabilities?: readonly CapabilityOverride[];
  costs?: readonly CostOverride[];
  breaker?: Partial<BreakerSettings>;
  concurrency?: ConcurrencySettings;
  clock?: RouterClock;
}

const systemClock: RouterClock = {
  now: () => Date.now(),
  sleep: async (ms, signal) => {
    await delay(ms, undefined, { signal });
  },
};

const REASONING_MAX_CHARS = 100_000;

export function createRouter(options: RouterOptions): ModelRouter {
  const { models, record, timeoutMs, log } = options;
  const chain = options.chain;
  const clock = options.clock ?? systemClock;
  const retries = options.retries ?? 2;
  const retryDelayMs = options.retryDelayMs ?? 1_000;
  const maxRetryAfterMs = options.maxRetryAfterMs ?? 30_000;
  const maxOutputTokens = options.maxOutputTokens ?? 4_096;
  const budgetTokens = options.thinkingBudgetTokens ?? 8_192;
  const capabilities = capabilityLookup(options.capabilities);
  const cost = costLookup(options.costs);
  const pool = dedupe([...chain, ...(options.pool ?? [])]);
  const breakerSettings: BreakerSettings = { failureThreshold: 3, cooldownMs: 30_000, maxCooldownMs: 300_000, ...options.breaker };
  const limiters = createProviderLimiters(options.concurrency ?? { default: 4, providers: {} });
  const breakers = new Map<ProviderName, CircuitBreaker>();

  const breakerOf = (provider: ProviderName) => {
    let breaker = breakers.get(provider);
    if (!breaker) {
      breaker = createBreaker(breakerSettings, clock.now, (from, to, s) => {
        const fields = {
          provider,
          from,
          to,
          consecutiveFailures: s.consecutiveFailures,
          openUntil: s.openUntil === undefined ? undefined : new Date(s.openUntil).toISOString(),
          cooldownMs: s.cooldownMs,
          lastError: s.lastError,
        };
        if (to === "open") log.warn(fields, `circuit breaker for ${provider} opened: skipping it for ${Math.round(s.cooldownMs / 1000)} s`);
        else log.info(fields, `circuit breaker for ${provider}: ${from} → ${to}`);
      });
      breakers.set(provider, breaker);
    }
    return breaker;
  };

  const fits = (ref: ModelRef, requires: ModelRequirements | undefined) => {
    const caps = capabilities(ref);
    return (!requires?.images || caps.images) && (!requires?.tools || caps.tools);
  };

  const candidatesFor = (request: ModelRequest): ModelRef[] => {
    const wanted = request.chain ?? chain;
    const fitting = wanted.filter((ref) => fits(ref, request.requires));
    if (fitting.length > 0) {
      if (fitting.length < wanted.length) log.debug({ requires: request.requires }, "skipping models that cannot take this request");
      return fitting;
    }
    const fromPool = pool.filter((ref) => fits(ref, request.requires));
    if (fromPool.length > 0) {
      log.info({ requires: request.requires, using: fromPool.map(refId) }, "no model of this chain can take the request; using other configured models");
      return fromPool;
    }
    const requirement = request.requires?.images && !pool.some((ref) => capabilities(ref).images) ? "images" : "tools";
    throw new NoCapableModelError(requirement);
  };

  /** One try: streams the whole answer inside the provider's limiter slot. */
  const tryOnce = async (ref: ModelRef, request: ModelRequest, progress: Progress, started: number): Promise<void> => {
    const caps = capabilities(ref);
    const own = request.trace.purpose === "answer" || request.trace.purpose === "agent" ? options.providerTools?.(ref) : undefined;
    const offered = { ...own, ...request.tools };
    const tools = caps.tools && Object.keys(offered).length > 0 ? offered : undefined;
    const shape = callShape(ref, {
      reasoning: request.reasoning === true && caps.reasoning,
      maxOutputTokens: request.maxOutputTokens ?? maxOutputTokens,
      budgetTokens,
    });
    const timeout = AbortSignal.timeout(timeoutMs);
    const selfHosted = ref.provider === "ollama" || ref.provider === "openai-compatible";
    const model = models(ref);
    const call = {
      system: selfHosted ? stripTemplateTokens(request.system) : request.system,
      messages: selfHosted ? stripTemplateTokensFrom(request.messages) : request.messages,
      abortSignal: AbortSignal.any([request.signal, timeout]),
      maxOutputTokens: shape.maxOutputTokens,
      providerOptions: shape.providerOptions,
    };
    const onText = (text: string) => {
      if (text === "") return;
      progress.firstTokenMs ??= Math.round(performance.now() - started);
      progress.text += text;
      progress.emitted = true;
      request.onDelta?.(text);
    };
    const onReasoning = (text: string) => {
      if (progress.reasoning.length < REASONING_MAX_CHARS) progress.reasoning += text;
    };
    try {
      if (!tools && typeof model === "object" && model.specificationVersion === "v3") {
        await streamOneStep(model, call, { onText, onReasoning, progress });
      } else {
        await streamSteps(model, call, tools ? { tools, stopWhen: stepCountIs(request.maxSteps ?? 5) } : {}, { onText, onReasoning, progress });
      }
      if (progress.text.trim() === "") throw new EmptyAnswerError("the model returned an empty answer");
    } catch (error) {
      if (timeout.aborted && !request.signal.aborted) throw new ModelTimeoutError(`timed out after ${timeoutMs / 1000} s`);
      throw error;
    }
  };

  // An answer is returned without waiting for its record to be written (a commit, on the way to the user's reply);
  // the caller waits for `recorded()` before it closes the message. A record that cannot be written is logged.
  const writing = new Set<Promise<void>>();
  const recordAnswered = (call: CallRecord) => {
    const done: Promise<void> = record(call)
      .then(
        () => undefined,
        (error: unknown) => log.warn({ err: error, provider: call.provider, model: call.model }, "could not record a model call"),
      )
      .finally(() => writing.delete(done));
    writing.add(done);
  };

  /** Tries one chain entry, with its retries; records it once. */
  const callEntry = async (ref: ModelRef, request: ModelRequest, trial: boolean): Promise<ModelAnswer> => {
    const breaker = breakerOf(ref.provider);
    const startedAt = new Date();
    const started = performance.now();
    const progress = newProgress();
    const base = { ...request.trace, provider: ref.provider, model: ref.model, startedAt };
    const recordFailure = (reason: string) =>
      record({
        ...base,
        latencyMs: Math.round(performance.now() - started),
        firstTokenMs: progress.firstTokenMs,
        ok: false,
        error: reason,
        reasoning: progress.reasoning || undefined,
        tools: progress.tools.length > 0 ? progress.tools : undefined,
      }).catch((recordError: unknown) => log.warn({ err: recordError }, "could not record a failed model call"));

    for (let attempt = 0; ; attempt++) {
      try {
        await limiters.schedule(ref.provider, PRIORITY[request.trace.purpose], request.signal, () => tryOnce(ref, request, progress, started));
        breaker.success(trial);
        const costUsd = cost(ref, progress.tokensIn ?? 0, progress.tokensOut ?? 0, progress.cachedIn);
        recordAnswered({
          ...base,
          latencyMs: Math.round(performance.now() - started),
          firstTokenMs: progress.firstTokenMs,
          tokensIn: progress.tokensIn,
          tokensOut: progress.tokensOut,
          costUsd,
          ok: true,
          reasoning: progress.reasoning || undefined,
          tools: progress.tools.length > 0 ? progress.tools : undefined,
        });
        return {
          text: progress.text,
          ref,
          tokensIn: progress.tokensIn,
          tokensOut: progress.tokensOut,
          costUsd,
          reasoning: progress.reasoning || undefined,
          sources: progress.sources.length > 0 ? progress.sources : undefined,
        };
      } catch (error) {
        if (request.signal.aborted) {
          breaker.release(trial);
          await recordFailure(describeModelError(error, request.signal, timeoutMs));
          throw new AttemptFailed("cancelled", { cause: error });
        }
        const verdict = classifyFailure(error, progress.emitted);
        const reason = describeModelError(error, request.signal, timeoutMs) + (attempt > 0 ? ` (after ${attempt + 1} tries)` : "");
        const wait = verdict.retryAfterMs ?? retryDelayMs * 2 ** attempt;
        if (verdict.retryable && attempt < retries && wait <= maxRetryAfterMs) {
          log.info({ provider: ref.provider, model: ref.model, reason, waitMs: wait, attempt: attempt + 1 }, "model call failed; retrying");
          const tools = progress.tools;
          Object.assign(progress, newProgress(), { tools });
          try {
            await clock.sleep(wait, request.signal);
          } catch (sleepError) {
            breaker.release(trial);
            await recordFailure("cancelled");
            throw new AttemptFailed("cancelled", { cause: sleepError });
          }
          continue;
        }
        if (verdict.health) breaker.failure(reason, trial);
        else breaker.success(trial);
        await recordFailure(reason);
        throw new AttemptFailed(reason, { cause: error, emitted: progress.emitted });
      }
    }
  };

  return {
    chain,
    capabilities,
    async stream(request) {
      const failures: Array<{ ref: ModelRef; error: string }> = [];
      for (const ref of candidatesFor(request)) {
        const admission = breakerOf(ref.provider).admit();
        if (admission.type === "skip") {
          failures.push({ ref, error: `skipped: ${ref.provider} is failing (circuit open until ${new Date(admission.openUntil).toISOString()})` });
          continue;
        }
        try {
          return await callEntry(ref, request, admission.trial);
        } catch (error) {
          if (request.signal.aborted) throw request.signal.reason ?? error;
          const reason = error instanceof AttemptFailed ? error.message : String(error);
          failures.push({ ref, error: reason });
          log.warn({ provider: ref.provider, model: ref.model, reason, purpose: request.trace.purpose }, "model call failed; trying the next in the chain");
          if (error instanceof AttemptFailed && error.emitted) request.onReset?.();
        }
      }
      throw new ModelUnavailableError(failures);
    },
    async recorded() {
      await Promise.all(writing);
    },
    health() {
      const providers = [...new Set(pool.map((ref) => ref.provider))];
      return providers.map((provider) => {
        const s = breakerOf(provider).snapshot();
        const load = limiters.counts(provider);
        return {
          provider,
          state: s.state,
          consecutiveFailures: s.consecutiveFailures,
          openUntil: s.openUntil === undefined ? undefined : new Date(s.openUntil),
          cooldownMs: s.cooldownMs,
          lastError: s.lastError,
          since: new Date(s.since),
          running: load.running,
          queued: load.queued,
          concurrency: load.limit,
        };
      });
    },
  };
}

interface Progress {
  emitted: boolean;
  text: string;
  reasoning: string;
  tools: ToolUse[];
  sources: Source[];
  firstTokenMs?: number;
  tokensIn?: number;
  /** The part of tokensIn read from the provider's prompt cache. */
  cachedIn?: number;
  tokensOut?: number;
}

const newProgress = (): Progress => ({ emitted: false, text: "", reasoning: "", tools: [], sources: [] });

/** Keeps a cited page once, in the order first cited; only http(s) addresses. */
function addSource(progress: Progress, url: string, title: string | undefined): void {
  if (!/^https?:\/\//i.test(url) || progress.sources.some((s) => s.url === url)) return;
  progress.sources.push(title ? { url, title } : { url });
}

type LanguageModelV3 = Extract<LanguageModel, { specificationVersion: "v3" }>;
type ProviderOptions = Parameters<typeof streamText>[0]["providerOptions"];

/** One call's input, as the router prepared it for the model. */
interface PreparedCall {
  system: string;
  messages: ModelMessage[];
  abortSignal: AbortSignal;
  maxOutputTokens: number;
  providerOptions: ProviderOptions | undefined;
}

interface StreamSink {
  onText(text: string): void;
  onReasoning(text: string): void;
  progress: Progress;
}

/**
 * A call that offers no tools is one step: the prompt is converted by the SDK's own functions (the same ones
 * streamText uses) and streamed from the provider's doStream. streamText's orchestration of steps, tools and
 * callbacks pipes every chunk through some ten web-stream transforms, which on Node 20 cost about 1.3 ms of CPU per
 * call here (`scratch`-measured: 2.1–2.4 ms per streamText call against 0.95 ms for doStream, same fake model): a
 * tenth of what Parley spends on a message.
 */
async function streamOneStep(model: LanguageModelV3, call: PreparedCall, sink: StreamSink): Promise<void> {
  const prompt = await convertToLanguageModelPrompt({
    prompt: await standardizePrompt({ system: call.system, messages: call.messages }),
    supportedUrls: await model.supportedUrls,
    download: undefined,
    abortSignal: call.abortSignal,
  });
  const { stream } = await model.doStream({
    ...prepareCallSettings({ maxOutputTokens: call.maxOutputTokens }),
    prompt,
    providerOptions: call.providerOptions,
    abortSignal: call.abortSignal,
  });
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value: part } = await reader.read();
      if (done) break;
      switch (part.type) {
        case "text-delta":
          sink.onText(part.delta);
          break;
        case "reasoning-delta":
          sink.onReasoning(part.delta);
          break;
        case "source":
          if (part.sourceType === "url") addSource(sink.progress, part.url, part.title);
          break;
        case "error":
          throw part.error;
        case "finish": {
          const usage = asLanguageModelUsage(part.usage);
          sink.progress.tokensIn = usage.inputTokens;
          sink.progress.cachedIn = usage.inputTokenDetails.cacheReadTokens;
          sink.progress.tokensOut = usage.outputTokens;
          break;
        }
      }
    }
  } catch (error) {
    // Stops the response body too, when the provider's stream is still going (an error part, not a dead socket).
    await reader.cancel(error).catch(() => undefined);
    throw error;
  }
}

/** Any other call (tools, or a model of an older specification) goes through streamText and its steps. */
async function streamSteps(
  model: LanguageModel,
  call: PreparedCall,
  toolOptions: { tools?: ToolSet; stopWhen?: ReturnType<typeof stepCountIs> },
  sink: StreamSink,
): Promise<void> {
  const { progress } = sink;
  const result = streamText({
    model,
    ...call,
    maxRetries: 0,
    ...toolOptions,
    // Errors are read from the stream below; the SDK's default handler would print them (and the provider's
    // message, which may quote a key) to the console.
    onError: () => {},
  });
  const uses = new Map<string, ToolUse>();
  for await (const part of result.fullStream) {
    switch (part.type) {
      case "text-delta":
        sink.onText(part.text);
        break;
      case "reasoning-delta":
        sink.onReasoning(part.text);
        break;
      case "source":
        if (part.sourceType === "url") addSource(progress, part.url, part.title);
        break;
      case "tool-call": {
        const use: ToolUse = { name: part.toolName, input: part.input };
        uses.set(part.toolCallId, use);
        progress.tools.push(use);
        break;
      }
      case "tool-result": {
        const use = uses.get(part.toolCallId);
        if (use) {
          use.outputChars = (typeof part.output === "string" ? part.output : JSON.stringify(part.output) ?? "").length;
          if (part.providerExecuted) Object.assign(use, searchRecord(part.output));
        }
        break;
      }
      case "tool-error": {
        const use = uses.get(part.toolCallId);
        if (use) use.error = truncate(errorMessage(part.error), 300);
        break;
      }
      case "error":
        throw part.error;
      case "abort":
        throw new Error("aborted");
      case "finish":
        progress.tokensIn = part.totalUsage.inputTokens;
        progress.cachedIn = part.totalUsage.inputTokenDetails?.cacheReadTokens;
        progress.tokensOut = part.totalUsage.outputTokens;
        break;
    }
  }
}

/** What a provider-run web search looked for and found, as its result reports it (the SDK's web search output). */
function searchRecord(output: unknown): Partial<ToolUse> {
  if (typeof output !== "object" || output === null) return {};
  const { action, sources } = output as { action?: unknown; sources?: unknown };
  const urls = Array.isArray(sources)
    ? sources.flatMap((s: unknown) => (typeof s === "object" && s !== null && typeof (s as { url?: unknown }).url === "string" ? [(s as { url: string }).url] : []))
    : [];
  return { ...(action !== undefined ? { input: action } : {}), ...(urls.length > 0 ? { sources: urls } : {}) };
}

class AttemptFailed extends Error {
  readonly emitted: boolean;
  constructor(message: string, options: { cause?: unknown; emitted?: boolean }) {
    super(message, { cause: options.cause });
    this.emitted = options.emitted ?? false;
  }
}

class ModelTimeoutError extends Error {
  override readonly name = "ModelTimeoutError";
}

class EmptyAnswerError extends Error {
  override readonly name = "EmptyAnswerError";
}

export interface FailureVerdict {
  /** Trying the same model again may help. */
  retryable: boolean;
  /** The failure says something about the provider (counts for its circuit breaker), not about this request. */
  health: boolean;
  retryAfterMs?: number;
}

/** Statuses that are about the request (too long, malformed, unknown model), not about the provider's health. */
const REQUEST_SPECIFIC = new Set([400, 404, 413, 415, 422]);
/** The SDK's errors for a request it refused to send. */
const REQUEST_ERRORS = new Set(["AI_InvalidPromptError", "AI_InvalidArgumentError", "AI_UnsupportedFunctionalityError", "AI_InvalidMessageRoleError"]);

/** Pure: what a failed try means. Text already shown to the user makes nothing retryable on the same model. */
export function classifyFailure(error: unknown, textEmitted: boolean): FailureVerdict {
  if (error instanceof ModelTimeoutError) return { retryable: !textEmitted, health: true };
  if (error instanceof EmptyAnswerError) return { retryable: false, health: false };
  if (APICallError.isInstance(error)) {
    const status = error.statusCode;
    return {
      retryable: error.isRetryable && !textEmitted,
      health: status === undefined || !REQUEST_SPECIFIC.has(status),
      retryAfterMs: retryAfterMs(error.responseHeaders),
    };
  }
  if (error instanceof Error && REQUEST_ERRORS.has(error.name)) return { retryable: false, health: false };
  // A connection refused or reset, a stream that died: the provider's trouble.
  return { retryable: !textEmitted, health: true };
}

/** `retry-after-ms`, or `retry-after` in seconds or as an HTTP date. */
export function retryAfterMs(headers: Record<string, string> | undefined, now = Date.now()): number | undefined {
  if (!headers) return undefined;
  const ms = Number.parseFloat(headers["retry-after-ms"] ?? "");
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const value = headers["retry-after"];
  if (!value) return undefined;
  const seconds = Number.parseFloat(value);
  if (Number.isFinite(seconds) && /^\s*[\d.]+\s*$/.test(value)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** A short reason for logs, the admin page and the user: the status and the provider's message, never a header. */
export function describeModelError(error: unknown, signal: AbortSignal, timeoutMs: number): string {
  if (signal.aborted) {
    const reason: unknown = signal.reason;
    if (reason instanceof Error && reason.name === "TimeoutError") return "timed out";
    return reason instanceof Error && reason.name !== "AbortError" ? `cancelled: ${truncate(reason.message, 200)}` : "cancelled";
  }
  if (RetryError.isInstance(error)) return `${describeModelError(error.lastError, signal, timeoutMs)} after ${error.errors.length} tries`;
  if (APICallError.isInstance(error)) {
    return `HTTP ${error.statusCode ?? "error"}: ${truncate(error.message, 200)}`;
  }
  if (error instanceof ModelTimeoutError) return error.message;
  if (error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError")) {
    return `timed out after ${timeoutMs / 1000} s`;
  }
  return truncate(errorMessage(error), 200);
}

/** Pure: whether any message carries an image (an image part, or a file part with an image media type). */
export function requirementsOf(messages: readonly ModelMessage[]): ModelRequirements {
  const images = messages.some(
    (m) =>
      m.role === "user" &&
      Array.isArray(m.content) &&
      m.content.some((part) => part.type === "image" || (part.type === "file" && part.mediaType.startsWith("image/"))),
  );
  return images ? { images } : {};
}

function dedupe(refs: readonly ModelRef[]): ModelRef[] {
  const seen = new Set<string>();
  return refs.filter((ref) => !seen.has(refId(ref)) && seen.add(refId(ref)));
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
