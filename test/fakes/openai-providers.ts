// Provider settings that point every provider Parley knows at one fake OpenAI-compatible server, for router tests.
import type { Config } from "../../src/config.ts";
import type { ModelRef } from "../../src/models/providers.ts";

/** openai (chat completions, as with a custom base URL), ollama, openai-compatible and meta all at `url`. */
export function providersFor(url: string): Config["providers"] {
  return {
    openai: { apiKey: "sk-test-openai-0123456789", baseURL: `${url}/v1` },
    anthropic: { apiKey: undefined },
    google: { apiKey: undefined },
    ollama: { baseURL: url },
    openaiCompatible: { baseURL: `${url}/v1`, apiKey: "sk-test-compatible-0123456789" },
    meta: { baseURL: `${url}/v1`, apiKey: "meta-test-0123456789", webSearch: false },
  };
}

/** "ollama:llava:7b" → { provider: "ollama", model: "llava:7b" }. */
export function ref(id: string): ModelRef {
  const colon = id.indexOf(":");
  return { provider: id.slice(0, colon) as ModelRef["provider"], model: id.slice(colon + 1) };
}
