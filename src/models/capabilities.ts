import { PROVIDERS, type ModelRef } from "./providers.ts";

/**
 * What a model can take: images, tools, reasoning effort, and how long a prompt may be. Matched on `provider:model`
 * by the operator's overrides first (MODEL_CAPABILITIES), then by the first pattern of the table below; an unknown
 * model gets a conservative default (text only, no tools, no reasoning, 32k context).
 *
 * Override syntax, entries separated by `;`:
 *
 *     <provider>:<model or glob with *>=<capabilities>
 *     ollama:llava*=images+tools,ctx=8192;openai-compatible:foo=reasoning;openai:gpt-4o-mini=text
 *
 * `<capabilities>` is a comma list of `ctx=<tokens>` (also `128k`) and one `+`-joined set of `images`, `tools`,
 * `reasoning` or `text` (none of them). A set replaces the table's flags; `ctx` alone keeps them.
 */

export interface ModelCapabilities {
  contextWindow: number;
  images: boolean;
  tools: boolean;
  reasoning: boolean;
}

export const CAPABILITY_FLAGS = ["images", "tools", "reasoning"] as const;
export type CapabilityFlag = (typeof CAPABILITY_FLAGS)[number];

export interface CapabilityOverride {
  /** `provider:model`, where the model may hold `*` wildcards. */
  pattern: string;
  flags?: Record<CapabilityFlag, boolean>;
  contextWindow?: number;
}

export type CapabilityLookup = (ref: ModelRef) => ModelCapabilities;

const caps = (contextWindow: number, ...flags: CapabilityFlag[]): ModelCapabilities => ({
  contextWindow,
  images: flags.includes("images"),
  tools: flags.includes("tools"),
  reasoning: flags.includes("reasoning"),
});

const LOCAL_VISION = /^(ollama|openai-compatible):.*(llava|vision|[-_.]vl\b|vl[-_:]|gemma3|llama4|qwen2\.5vl|minicpm-v|moondream|pixtral)/i;
const LOCAL_REASONING = /^(ollama|openai-compatible):.*(deepseek-r1|qwq|qwen3|gpt-oss|magistral|phi4-reasoning)/i;
const LOCAL_TOOLS = /^(ollama|openai-compatible):.*(llama3\.[1-3]|qwen2\.5|mistral|mixtral|command-r|hermes|granite|firefunction)/i;

// Order matters: the first match wins, so specific patterns come before general ones.
const TABLE: Array<[RegExp, ModelCapabilities]> = [
  [/^openai:gpt-5(\.\d+)?-chat/, caps(128_000, "images", "tools")],
  [/^openai:gpt-5/, caps(400_000, "images", "tools", "reasoning")],
  [/^openai:gpt-4\.1/, caps(1_000_000, "images", "tools")],
  [/^openai:gpt-4o/, caps(128_000, "images", "tools")],
  [/^openai:o\d/, caps(200_000, "images", "tools", "reasoning")],
  [/^openai:gpt-3\.5/, caps(16_000, "tools")],
  [/^anthropic:claude-(opus|sonnet|haiku)-4|^anthropic:claude-3-7/, caps(200_000, "images", "tools", "reasoning")],
  [/^anthropic:claude/, caps(200_000, "images", "tools")],
  [/^google:gemini-(2\.5|[3-9])/, caps(1_000_000, "images", "tools", "reasoning")],
  [/^google:gemini/, caps(1_000_000, "images", "tools")],
  // Meta's Model API: Muse Spark 1.1 and 1.2 (text, image and PDF in; 131,072 tokens out), 1.3 and Muse Ember 1.0
  // (text and image in), their -contributor variants alike; all reason and call tools, over 1,048,576 tokens.
  [/^meta:muse-(spark-1\.[1-3]|ember-1\.0)(-contributor)?$/i, caps(1_048_576, "images", "tools", "reasoning")],
  [/^meta:muse/i, caps(128_000, "images", "tools", "reasoning")],
  [/^meta:/, caps(128_000, "tools", "reasoning")],
  [LOCAL_VISION, caps(32_768, "images")],
  [LOCAL_REASONING, caps(32_768, "tools", "reasoning")],
  [LOCAL_TOOLS, caps(32_768, "tools")],
];

const DEFAULT: ModelCapabilities = caps(32_768);

export function capabilityLookup(overrides: readonly CapabilityOverride[] = []): CapabilityLookup {
  const compiled = overrides.map((o) => ({ ...o, regex: globToRegExp(o.pattern) }));
  return (ref) => {
    const id = `${ref.provider}:${ref.model}`;
    const base = TABLE.find(([pattern]) => pattern.test(id))?.[1] ?? DEFAULT;
    const override = compiled.find((o) => o.regex.test(id));
    if (!override) return base;
    return { ...base, ...override.flags, contextWindow: override.contextWindow ?? base.contextWindow };
  };
}

/** `ollama:llava*` → /^ollama:llava.*$/ ; everything but `*` is literal. */
export function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`, "i");
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** Splits `provider:model=value` entries separated by `;`, checking the provider. Shared by MODEL_COSTS. */
export function parseModelEntries(text: string): Parsed<Array<{ pattern: string; value: string; entry: string }>> {
  const out: Array<{ pattern: string; value: string; entry: string }> = [];
  for (const entry of text.split(";").map((e) => e.trim()).filter(Boolean)) {
    const eq = entry.indexOf("=");
    const pattern = eq < 0 ? entry : entry.slice(0, eq).trim();
    const colon = pattern.indexOf(":");
    const provider = pattern.slice(0, colon);
    if (eq < 0 || colon <= 0 || pattern.slice(colon + 1) === "") {
      return { ok: false, error: `"${entry}" is not <provider>:<model>=<value>` };
    }
    if (!(PROVIDERS as readonly string[]).includes(provider)) {
      return { ok: false, error: `"${entry}": unknown provider "${provider}" (one of ${PROVIDERS.join(", ")})` };
    }
    out.push({ pattern, value: entry.slice(eq + 1).trim(), entry });
  }
  return { ok: true, value: out };
}

export function parseCapabilityOverrides(text: string): Parsed<CapabilityOverride[]> {
  const entries = parseModelEntries(text);
  if (!entries.ok) return entries;
  const overrides: CapabilityOverride[] = [];
  for (const { pattern, value, entry } of entries.value) {
    const override: CapabilityOverride = { pattern };
    for (const item of value.split(",").map((i) => i.trim()).filter(Boolean)) {
      const ctx = /^ctx=(\d+)(k?)$/i.exec(item);
      if (ctx) {
        override.contextWindow = Number(ctx[1]) * (ctx[2] ? 1000 : 1);
        if (override.contextWindow < 512) return { ok: false, error: `"${entry}": ctx must be at least 512 tokens` };
        continue;
      }
      if (override.flags) return { ok: false, error: `"${entry}": give the capabilities as one set joined by + (e.g. images+tools)` };
      const flags = { images: false, tools: false, reasoning: false };
      for (const flag of item.split("+").map((f) => f.trim().toLowerCase())) {
        if (flag === "text") continue;
        if (!(CAPABILITY_FLAGS as readonly string[]).includes(flag)) {
          return { ok: false, error: `"${entry}": unknown capability "${flag}" (use images, tools, reasoning, text or ctx=<tokens>)` };
        }
        flags[flag as CapabilityFlag] = true;
      }
      override.flags = flags;
    }
    if (!override.flags && override.contextWindow === undefined) return { ok: false, error: `"${entry}" names no capability` };
    overrides.push(override);
  }
  return { ok: true, value: overrides };
}
