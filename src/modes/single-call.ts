import type { ModelRef } from "../models/providers.ts";
import { ModelUnavailableError, NoCapableModelError, type CallPurpose, type ModelAnswer } from "../models/router.ts";
import { sourcesFooter } from "./sources.ts";
import type { ModeContext, ModeName, ModeResult } from "./types.ts";

/** One streamed call on a chain: what Instant and Thinking are, and Contemplating's fallback. */
export async function answerOnce(
  ctx: ModeContext,
  o: { mode: ModeName; chain: readonly ModelRef[]; reasoning: boolean; system?: string; parentId?: number },
): Promise<ModeResult> {
  try {
    const answer = await streamOn(ctx, { ...o, purpose: "answer" });
    return { type: "answer", mode: o.mode, text: withSources(ctx, answer.text, answer.sources) };
  } catch (error) {
    return failureResult(error);
  }
}

export function streamOn(
  ctx: ModeContext,
  o: { mode: ModeName; chain: readonly ModelRef[]; reasoning: boolean; system?: string; parentId?: number; purpose: CallPurpose },
): Promise<ModelAnswer> {
  return ctx.router.stream({
    system: o.system ?? ctx.system,
    messages: ctx.messages,
    signal: ctx.signal,
    chain: o.chain,
    requires: ctx.requires,
    reasoning: o.reasoning,
    tools: ctx.tools,
    maxSteps: ctx.settings.maxSteps,
    trace: { ...ctx.trace, purpose: o.purpose, mode: o.mode, parentId: o.parentId },
    onDelta: (delta) => ctx.output.push(delta),
    onReset: () => ctx.output.reset(),
  });
}

/** The answer with the pages its web search cited after it, streamed to the user too. */
export function withSources(ctx: ModeContext, text: string, sources: ModelAnswer["sources"]): string {
  const footer = sourcesFooter(sources);
  if (footer) ctx.output.push(footer);
  return text + footer;
}

/** Maps the router's errors to results; anything else (cancellation, a bug) is thrown on. */
export function failureResult(error: unknown): ModeResult {
  if (error instanceof NoCapableModelError) return { type: "refused", reply: cannotTake(error.requirement) };
  if (error instanceof ModelUnavailableError) return { type: "unavailable", reason: error.message };
  throw error;
}

export function cannotTake(requirement: NoCapableModelError["requirement"]): string {
  return requirement === "images"
    ? "I can't look at images: none of the models configured here can see them. Please describe it in words, or ask " +
        "the operator to add a vision model (for example openai:gpt-5-mini) to MODELS_INSTANT."
    : "None of the models configured here can use tools, which this request needs.";
}
