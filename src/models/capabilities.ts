import type { ModelRef } from "../config.ts";

/**
 * What a model can take. Matched by the first pattern that fits `provider:model`; unknown models get a conservative
 * default. Costs are USD per million tokens (input, output) and only used for reporting.
 */
export interface ModelCapabilities {
  contextWindow: number;
  images: boolean;
  costPerMillion?: { input: number; output: number };
}

const TABLE: Array<[RegExp, ModelCapabilities]> = [
  [/^openai:gpt-5/, { contextWindow: 400_000, images: true, costPerMillion: { input: 1.25, output: 10 } }],
  [/^openai:gpt-4\.1/, { contextWindow: 1_000_000, images: true, costPerMillion: { input: 2, output: 8 } }],
  [/^openai:gpt-4o/, { contextWindow: 128_000, images: true, costPerMillion: { input: 2.5, output: 10 } }],
  [/^openai:o\d/, { contextWindow: 200_000, images: true }],
  [/^anthropic:claude/, { contextWindow: 200_000, images: true, costPerMillion: { input: 3, output: 15 } }],
  [/^google:gemini/, { contextWindow: 1_000_000, images: true, costPerMillion: { input: 1.25, output: 10 } }],
  [/^(ollama|openai-compatible):.*(llava|vision|vl|gemma3|llama4|qwen2\.5vl)/i, { contextWindow: 32_768, images: true }],
];

const DEFAULT: ModelCapabilities = { contextWindow: 32_768, images: false };

export function capabilitiesOf(ref: ModelRef): ModelCapabilities {
  const id = `${ref.provider}:${ref.model}`;
  return TABLE.find(([pattern]) => pattern.test(id))?.[1] ?? DEFAULT;
}

export function costOf(ref: ModelRef, tokensIn: number, tokensOut: number): number | undefined {
  const price = capabilitiesOf(ref).costPerMillion;
  return price ? (tokensIn * price.input + tokensOut * price.output) / 1_000_000 : undefined;
}
