import type { LanguageModel, LanguageModelMiddleware } from "ai";
import type { ProviderName } from "./providers.ts";

/**
 * What a provider refuses on the wire, and the guard that keeps it out of every call. The guard is a pure function of
 * the provider's rules and the call's options, applied as AI SDK middleware (wrapLanguageModel) around the provider's
 * model, so no path through the router or the modes can send what the provider rejects.
 *
 * Meta's Model API (Muse Spark): reasoning effort is one of minimal, low, medium, high, xhigh (never `none`: Muse
 * Spark always reasons); `tool_choice` may only be `auto`; stop sequences are not honoured; and Parley keeps no state
 * at Meta (`store: false`), so users' messages are not stored there and reasoning is replayed from its encrypted form.
 */

export interface WireRules {
  /** The reasoning efforts the provider takes; another is moved to the nearest of them (`none` to the lowest). */
  reasoningEfforts?: readonly ReasoningEffort[];
  /** Only `auto` tool choice: a named or required choice becomes auto, `none` offers no tools. */
  autoToolChoiceOnly?: boolean;
  /** Stop sequences are dropped. */
  noStopSequences?: boolean;
  /** `store: false` on every call (Responses API). */
  stateless?: boolean;
}

/** Every effort an AI SDK provider knows, from least to most. */
const EFFORT_SCALE = ["none", "minimal", "low", "medium", "high", "xhigh", "max"] as const;
export type ReasoningEffort = (typeof EFFORT_SCALE)[number];

export const WIRE_RULES: Partial<Record<ProviderName, WireRules>> = {
  meta: {
    reasoningEfforts: ["minimal", "low", "medium", "high", "xhigh"],
    autoToolChoiceOnly: true,
    noStopSequences: true,
    stateless: true,
  },
};

type LanguageModelV3 = Extract<LanguageModel, { specificationVersion: "v3" }>;
export type CallOptions = Parameters<LanguageModelV3["doStream"]>[0];

export interface Guarded {
  options: CallOptions;
  /** What was changed, for a debug log: e.g. `reasoningEffort none → minimal`. */
  changes: string[];
}

/** Pure: the call options with everything the rules forbid taken out or moved to what they allow. */
export function applyWireRules(rules: WireRules, options: CallOptions): Guarded {
  const changes: string[] = [];
  const out: CallOptions = { ...options };

  if (rules.noStopSequences && out.stopSequences !== undefined) {
    delete out.stopSequences;
    changes.push("stopSequences dropped");
  }

  if (rules.autoToolChoiceOnly) {
    const choice = out.toolChoice;
    if (choice?.type === "none") {
      delete out.tools;
      delete out.toolChoice;
      changes.push("toolChoice none → no tools offered");
    } else if (choice?.type === "required") {
      out.toolChoice = { type: "auto" };
      changes.push("toolChoice required → auto");
    } else if (choice?.type === "tool") {
      out.tools = out.tools?.filter((tool) => tool.name === choice.toolName);
      out.toolChoice = { type: "auto" };
      changes.push(`toolChoice ${choice.toolName} → auto with only that tool`);
    }
  }

  if (out.providerOptions) {
    const providerOptions: NonNullable<CallOptions["providerOptions"]> = {};
    for (const [name, values] of Object.entries(out.providerOptions)) {
      const next = { ...values };
      if (rules.reasoningEfforts && typeof next.reasoningEffort === "string") {
        const effort = nearestEffort(next.reasoningEffort, rules.reasoningEfforts);
        if (effort === undefined) {
          delete next.reasoningEffort;
          changes.push(`${name}.reasoningEffort ${next.reasoningEffort} dropped`);
        } else if (effort !== next.reasoningEffort) {
          changes.push(`${name}.reasoningEffort ${next.reasoningEffort} → ${effort}`);
          next.reasoningEffort = effort;
        }
      }
      if (rules.autoToolChoiceOnly && next.allowedTools !== undefined) {
        // The Responses API sends allowedTools as a `tool_choice` of type allowed_tools.
        delete next.allowedTools;
        changes.push(`${name}.allowedTools dropped`);
      }
      providerOptions[name] = next;
    }
    out.providerOptions = providerOptions;
  }

  if (rules.stateless) {
    const openai = out.providerOptions?.openai ?? {};
    if (openai.store !== false) {
      out.providerOptions = { ...out.providerOptions, openai: { ...openai, store: false } };
      changes.push("store → false");
    }
  }

  return { options: out, changes };
}

/** The allowed effort nearest to `effort` on the scale (ties go down); undefined when `effort` is not on it. */
export function nearestEffort(effort: string, allowed: readonly ReasoningEffort[]): ReasoningEffort | undefined {
  const rank = EFFORT_SCALE.indexOf(effort as ReasoningEffort);
  if (rank < 0 || allowed.length === 0) return undefined;
  let best: ReasoningEffort | undefined;
  for (const candidate of allowed) {
    const distance = Math.abs(EFFORT_SCALE.indexOf(candidate) - rank);
    if (best === undefined || distance < Math.abs(EFFORT_SCALE.indexOf(best) - rank)) best = candidate;
  }
  return best;
}

/** The guard as middleware, for wrapLanguageModel. `onChange` hears what was changed, when anything was. */
export function wireRulesMiddleware(rules: WireRules, onChange?: (changes: string[]) => void): LanguageModelMiddleware {
  return {
    specificationVersion: "v3",
    transformParams: async ({ params }) => {
      const { options, changes } = applyWireRules(rules, params);
      if (changes.length > 0) onChange?.(changes);
      return options;
    },
  };
}
