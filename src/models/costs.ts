import type { ModelRef } from "./providers.ts";
import { globToRegExp, parseModelEntries, type Parsed } from "./capabilities.ts";

/**
 * What a call cost, in USD, from list prices per million tokens (input, output, and cached input where the provider
 * prices it apart). The table covers common models (prices as published; check your bill); MODEL_COSTS overrides or
 * adds entries with the same `<provider>:<model or glob>=<input>/<output>` syntax, or
 * `<input>/<cached input>/<output>`, separated by `;`, e.g. `openai:gpt-5=1.25/10;meta:muse-spark-1.2=1.25/0.15/4.25`.
 * Cached input tokens are part of the input count (as providers report them) and cost the cached price when there is
 * one, the input price otherwise. A model without a price records no cost rather than a wrong one.
 */

export interface Price {
  input: number;
  output: number;
  cachedInput?: number;
}

export interface CostOverride {
  pattern: string;
  price: Price;
}

/** `cachedIn` is the part of `tokensIn` read from the provider's prompt cache. */
export type CostLookup = (ref: ModelRef, tokensIn: number, tokensOut: number, cachedIn?: number) => number | undefined;

const p = (input: number, output: number, cachedInput?: number): Price => (cachedInput === undefined ? { input, output } : { input, output, cachedInput });

// First match wins: specific names before their family.
const TABLE: Array<[RegExp, Price]> = [
  [/^openai:gpt-5(\.\d+)?-nano/, p(0.05, 0.4)],
  [/^openai:gpt-5(\.\d+)?-mini/, p(0.25, 2)],
  [/^openai:gpt-5/, p(1.25, 10)],
  [/^openai:gpt-4\.1-nano/, p(0.1, 0.4)],
  [/^openai:gpt-4\.1-mini/, p(0.4, 1.6)],
  [/^openai:gpt-4\.1/, p(2, 8)],
  [/^openai:gpt-4o-mini/, p(0.15, 0.6)],
  [/^openai:gpt-4o/, p(2.5, 10)],
  [/^openai:o4-mini|^openai:o3-mini/, p(1.1, 4.4)],
  [/^openai:o3/, p(2, 8)],
  [/^anthropic:claude-opus-4-[5-9]/, p(5, 25)],
  [/^anthropic:claude-opus/, p(15, 75)],
  [/^anthropic:claude-(sonnet|3-7-sonnet|3-5-sonnet)/, p(3, 15)],
  [/^anthropic:claude-haiku-4/, p(1, 5)],
  [/^anthropic:claude-3-5-haiku/, p(0.8, 4)],
  [/^google:gemini-2\.5-flash-lite/, p(0.1, 0.4)],
  [/^google:gemini-2\.5-flash/, p(0.3, 2.5)],
  [/^google:gemini-2\.5-pro/, p(1.25, 10)],
  // Meta's Model API. -contributor models cost far less because Meta may train on their traffic (see meta.ts).
  [/^meta:muse-spark-1\.[1-3]-contributor$/i, p(0.1, 0.2, 0.002)],
  [/^meta:muse-spark-1\.[1-3]$/i, p(1.25, 4.25, 0.15)],
  [/^meta:muse-ember-1\.0$/i, p(0.1, 0.5)],
  [/^ollama:/, p(0, 0)],
];

export function costLookup(overrides: readonly CostOverride[] = []): CostLookup {
  const compiled = overrides.map((o) => ({ regex: globToRegExp(o.pattern), price: o.price }));
  return (ref, tokensIn, tokensOut, cachedIn = 0) => {
    const id = `${ref.provider}:${ref.model}`;
    const price = compiled.find((o) => o.regex.test(id))?.price ?? TABLE.find(([pattern]) => pattern.test(id))?.[1];
    if (!price) return undefined;
    const cached = Math.min(Math.max(0, cachedIn), tokensIn);
    const input = (tokensIn - cached) * price.input + cached * (price.cachedInput ?? price.input);
    return (input + tokensOut * price.output) / 1_000_000;
  };
}

export function parseCostOverrides(text: string): Parsed<CostOverride[]> {
  const entries = parseModelEntries(text);
  if (!entries.ok) return entries;
  const out: CostOverride[] = [];
  for (const { pattern, value, entry } of entries.value) {
    const m = /^(\d+(?:\.\d+)?)\s*\/\s*(\d+(?:\.\d+)?)(?:\s*\/\s*(\d+(?:\.\d+)?))?$/.exec(value);
    if (!m) {
      return {
        ok: false,
        error: `"${entry}": the price must be <input>/<output> or <input>/<cached input>/<output> USD per million tokens, e.g. 1.25/10`,
      };
    }
    out.push({ pattern, price: m[3] === undefined ? p(Number(m[1]), Number(m[2])) : p(Number(m[1]), Number(m[3]), Number(m[2])) });
  }
  return { ok: true, value: out };
}
