import type { JSONValue } from "ai";
import type { ModelRef } from "./providers.ts";

/**
 * How each provider is asked to reason hard (Thinking and Contemplating). Only sent to models whose capability says
 * reasoning: a model without it would refuse or ignore the option. The budget is on top of the answer's own output
 * cap, so a long think does not starve the answer.
 *
 * - openai: `reasoningEffort: "high"`, with a reasoning summary so admins can read how it got there;
 * - anthropic: extended thinking with `budgetTokens` (the SDK adds the budget to max_tokens itself);
 * - google: `thinkingConfig` with `thinkingBudget` and `includeThoughts`;
 * - openai-compatible servers (vLLM, Ollama): `reasoning_effort: "high"`;
 * - meta (Muse Spark, Responses API): Muse Spark always reasons, so every call names its effort: `high` with a
 *   reasoning summary when asked to reason hard, else `minimal`, the lowest Meta takes (never `none`). Its reasoning
 *   tokens count against the output cap, so the budget is added in both. `forceReasoning` tells the SDK it is a
 *   reasoning model (it only knows OpenAI's names); `store: false` keeps no state at Meta, and the SDK then asks for
 *   the encrypted reasoning to replay between tool steps.
 */

type JsonObject = Record<string, Record<string, JSONValue>>;

export interface CallShape {
  providerOptions?: JsonObject;
  maxOutputTokens: number;
}

export function callShape(ref: ModelRef, o: { reasoning: boolean; maxOutputTokens: number; budgetTokens: number }): CallShape {
  if (ref.provider === "meta") {
    const effort: Record<string, JSONValue> = o.reasoning ? { reasoningEffort: "high", reasoningSummary: "auto" } : { reasoningEffort: "minimal" };
    return {
      providerOptions: { openai: { ...effort, forceReasoning: true, systemMessageMode: "system", store: false } },
      maxOutputTokens: o.maxOutputTokens + o.budgetTokens,
    };
  }
  if (!o.reasoning) return { maxOutputTokens: o.maxOutputTokens };
  switch (ref.provider) {
    case "openai":
      return {
        providerOptions: { openai: { reasoningEffort: "high", reasoningSummary: "auto" } },
        maxOutputTokens: o.maxOutputTokens + o.budgetTokens,
      };
    case "anthropic":
      return { providerOptions: { anthropic: { thinking: { type: "enabled", budgetTokens: o.budgetTokens } } }, maxOutputTokens: o.maxOutputTokens };
    case "google":
      return {
        providerOptions: { google: { thinkingConfig: { thinkingBudget: o.budgetTokens, includeThoughts: true } } },
        maxOutputTokens: o.maxOutputTokens + o.budgetTokens,
      };
    case "openai-compatible":
    case "ollama":
      return { providerOptions: { openaiCompatible: { reasoningEffort: "high" } }, maxOutputTokens: o.maxOutputTokens + o.budgetTokens };
  }
}
