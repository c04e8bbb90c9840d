import { createAnthropic } from "@ai-sdk/anthropic";
import { createGoogleGenerativeAI } from "@ai-sdk/google";
import { createOpenAI } from "@ai-sdk/openai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import type { LanguageModel } from "ai";
import type { Config } from "../config.ts";
import type { ModelRef } from "./providers.ts";

/**
 * Turns a configured `provider:model` into an AI SDK language model. Everything provider-specific lives here and in
 * the capability table beside it; the rest of Parley sees only `LanguageModel`.
 */
export type ModelFactory = (ref: ModelRef) => LanguageModel;

export function createModelFactory(providers: Config["providers"], fetchImpl?: typeof fetch): ModelFactory {
  const cache = new Map<string, (model: string) => LanguageModel>();
  const make = (provider: ModelRef["provider"]): ((model: string) => LanguageModel) => {
    switch (provider) {
      case "openai": {
        const openai = createOpenAI({ ...providers.openai, fetch: fetchImpl });
        // A custom base URL is usually an OpenAI-compatible server that speaks chat completions only.
        return providers.openai.baseURL ? (m) => openai.chat(m) : (m) => openai(m);
      }
      case "anthropic":
        return createAnthropic({ apiKey: providers.anthropic.apiKey, fetch: fetchImpl });
      case "google":
        return createGoogleGenerativeAI({ apiKey: providers.google.apiKey, fetch: fetchImpl });
      case "ollama":
        return createOpenAICompatible({
          name: "ollama",
          baseURL: `${providers.ollama.baseURL.replace(/\/+$/, "")}/v1`,
          includeUsage: true,
          fetch: fetchImpl,
        });
      case "meta":
        // Meta's Llama API (Muse Spark, Llama 4) speaks OpenAI's chat completions at META_BASE_URL.
        return createOpenAICompatible({
          name: "meta",
          baseURL: providers.meta.baseURL,
          apiKey: providers.meta.apiKey,
          includeUsage: true,
          fetch: fetchImpl,
        });
      case "openai-compatible":
        return createOpenAICompatible({
          name: "openai-compatible",
          baseURL: providers.openaiCompatible.baseURL ?? "",
          apiKey: providers.openaiCompatible.apiKey,
          includeUsage: true,
          fetch: fetchImpl,
        });
    }
  };
  // Models are stateless descriptions of an endpoint: one per ref for the process, not one per call.
  const models = new Map<string, LanguageModel>();
  return (ref) => {
    const id = `${ref.provider}:${ref.model}`;
    let model = models.get(id);
    if (!model) {
      let provider = cache.get(ref.provider);
      if (!provider) {
        provider = make(ref.provider);
        cache.set(ref.provider, provider);
      }
      model = provider(ref.model);
      models.set(id, model);
    }
    return model;
  };
}
