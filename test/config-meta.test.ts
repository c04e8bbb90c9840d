import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, secretsOf } from "../src/config.ts";
import { parseCostOverrides } from "../src/models/costs.ts";

/**
 * Meta's Model API in the configuration, as start-up reads it: the default address, Meta's own key name, the refusal
 * of -contributor models and of the retired Llama API, with messages that say why and what to set.
 */

const KEY = "LLM|1234567890|fake-model-api-key-abcdef";
const load = (env: Record<string, string>) => loadConfig({ MODELS_INSTANT: "meta:muse-spark-1.2", META_API_KEY: KEY, ...env }, "/nonexistent/.env");
const failure = (env: Record<string, string>) => {
  try {
    load(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("the configuration was accepted");
};

describe("Meta's Model API settings", () => {
  it("defaults to https://api.meta.ai/v1, web search off; MODEL_API_KEY, Meta's own name, works as the key (and is kept out of logs)", () => {
    expect(load({}).providers.meta).toEqual({ baseURL: "https://api.meta.ai/v1", apiKey: KEY, webSearch: false });
    const viaMetaName = load({ META_API_KEY: "", MODEL_API_KEY: KEY });
    expect(viaMetaName.providers.meta.apiKey).toBe(KEY);
    expect(secretsOf(viaMetaName)).toContain(KEY);
    expect(load({ META_API_KEY: "LLM|own", MODEL_API_KEY: KEY }).providers.meta.apiKey).toBe("LLM|own");
    expect(load({ META_WEB_SEARCH: "true" }).providers.meta.webSearch).toBe(true);
    expect(failure({ META_API_KEY: "" })).toContain("META_API_KEY: is required when MODELS_INSTANT uses the meta provider (MODEL_API_KEY");
  });

  it.each(["MODELS_INSTANT", "MODELS_THINKING", "MODELS_CONTEMPLATING", "MODELS_SYNTHESIS"])(
    "refuses a -contributor model in %s, saying Meta may train on the users' private messages, unless allowed",
    (name) => {
      const env = { [name]: name === "MODELS_CONTEMPLATING" ? "meta:muse-spark-1.2|meta:muse-spark-1.1-contributor" : "meta:muse-spark-1.2-contributor" };
      const message = failure(env);
      expect(message).toContain(`${name}: uses meta:muse-spark-1.`);
      expect(message).toContain("Meta may train on what is sent to it");
      expect(message).toContain("your users' private messages");
      expect(message).toContain("META_ALLOW_CONTRIBUTOR_MODELS=true");
      expect(() => load({ ...env, META_ALLOW_CONTRIBUTOR_MODELS: "true" })).not.toThrow();
    },
  );

  it.each(["https://api.llama.com/compat/v1", "https://API.Llama.com/v1/", "https://eu.api.llama.com/compat/v1"])(
    "stops start-up on the retired Llama API (%s), saying what to set",
    (url) => {
      const message = failure({ META_BASE_URL: url });
      expect(message).toContain("META_BASE_URL: points at Meta's Llama API (api.llama.com), which Meta retired on 2026-07-06");
      expect(message).toContain("unset META_BASE_URL (the default is https://api.meta.ai/v1)");
      expect(message).toContain("META_API_KEY");
    },
  );

  it("takes a cached-input price in MODEL_COSTS: <input>/<cached>/<output>", () => {
    expect(parseCostOverrides("meta:muse-*=1/0.1/3;openai:gpt-5=1.25/10")).toEqual({
      ok: true,
      value: [
        { pattern: "meta:muse-*", price: { input: 1, cachedInput: 0.1, output: 3 } },
        { pattern: "openai:gpt-5", price: { input: 1.25, output: 10 } },
      ],
    });
    expect(load({ MODEL_COSTS: "meta:muse-*=1/0.1/3" }).models.costs).toHaveLength(1);
    expect(failure({ MODEL_COSTS: "meta:muse-*=1/0.1/3/4" })).toContain("<input>/<cached input>/<output>");
  });
});
