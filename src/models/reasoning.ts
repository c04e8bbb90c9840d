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
 * - openai-compatible servers (vLLM, Ollama, Meta's API): `reasoning_effort: "high"`.
 */

type JsonObject = Record<string, Record<string, JSONValue>>;

export interface CallShape {
  providerOptions?: JsonObject;
  maxOutputTokens: number;
}

export function callShape(ref: ModelRef, o: { reasoning: boolean; maxOutputTokens: number; budgetTokens: number }): CallShape {
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
    case "meta":
      return { providerOptions: { openaiCompatible: { reasoningEffort: "high" } }, maxOutputTokens: o.maxOutputTokens + o.budgetTokens };
  }
}
