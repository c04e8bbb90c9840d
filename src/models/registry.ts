import { createAnthropic } from "@ai-sdk/anthropic";
import { createGoogleGenerativeAI } from "@ai-sdk/google";
import { createOpenAI } from "@ai-sdk/openai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { wrapLanguageModel, type LanguageModel, type ToolSet } from "ai";
import type { Config } from "../config.ts";
import type { ModelRef } from "./providers.ts";
import { WIRE_RULES, wireRulesMiddleware } from "./wire-rules.ts";

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
      case "meta": {
        // Meta's Model API (Muse Spark) at META_BASE_URL, through the SDK's own Responses API support, behind the guard
        // that keeps out what Meta refuses (wire-rules.ts). The key is always explicit: left undefined, the SDK would
        // read OPENAI_API_KEY from process.env by itself.
        const meta = createOpenAI({ name: "meta", baseURL: providers.meta.baseURL, apiKey: providers.meta.apiKey ?? "", fetch: fetchImpl });
        const middleware = wireRulesMiddleware(WIRE_RULES.meta!);
        return (m) => wrapLanguageModel({ model: meta.responses(m), middleware });
      }
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

/**
 * Tools a provider runs on its own side, offered beside Parley's tools to that provider's models: Meta's server-side
 * web search when META_WEB_SEARCH=true. The SDK's provider-defined tool; its sources come back as `source` parts.
 */
export type ProviderTools = (ref: ModelRef) => ToolSet | undefined;

export function createProviderTools(providers: Config["providers"]): ProviderTools {
  // The cast only bridges two installed copies of @ai-sdk/provider-utils (ai's and @ai-sdk/openai's), whose Schema
  // types differ by a private symbol; the tool is the SDK's own provider-defined tool either way.
  const meta = providers.meta.webSearch
    ? ({ web_search: createOpenAI({ name: "meta", apiKey: "" }).tools.webSearch({}) } as unknown as ToolSet)
    : undefined;
  return (ref) => (ref.provider === "meta" ? meta : undefined);
}
