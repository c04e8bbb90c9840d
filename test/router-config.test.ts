import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.ts";
import { capabilityLookup, parseCapabilityOverrides } from "../src/models/capabilities.ts";
import { costLookup, parseCostOverrides } from "../src/models/costs.ts";
import { modeSettingsFrom } from "../src/modes/settings.ts";
import { ref } from "./fakes/openai-providers.ts";

const load = (env: Record<string, string>) => loadConfig({ MODELS_INSTANT: "openai:gpt-5-mini", ...env }, "/nonexistent/.env");
const failure = (env: Record<string, string>) => {
  try {
    load(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("the configuration was accepted");
};

describe("model configuration", () => {
  it("defaults: thinking is the instant chain, contemplating's agents and synthesis the thinking chain", () => {
    const config = load({});
    expect(config.models).toMatchObject({
      instant: [ref("openai:gpt-5-mini")],
      thinking: [ref("openai:gpt-5-mini")],
      contemplating: [[ref("openai:gpt-5-mini")]],
      synthesis: [ref("openai:gpt-5-mini")],
      retries: 2,
      retryDelayMs: 1_000,
      breaker: { failureThreshold: 3, cooldownMs: 30_000, maxCooldownMs: 300_000 },
      concurrency: { default: 4, providers: {} },
    });
    expect(config.contemplate).toEqual({ agents: 3, agentTimeoutMs: 90_000, maxOutputTokens: 4_096, budgetTokens: 12_000 });
    expect(config.tools).toEqual({ enabled: ["time", "calculator"], maxSteps: 5, timeZone: "UTC" });
    expect(config.providers.meta).toEqual({ baseURL: "https://api.meta.ai/v1", apiKey: undefined, webSearch: false });
  });

  it("reads one chain per agent separated by |, and the other mode settings", () => {
    const config = load({
      MODELS_THINKING: "anthropic:claude-sonnet-4-5,openai:gpt-5",
      MODELS_CONTEMPLATING: "openai:gpt-5 | anthropic:claude-sonnet-4-5 | google:gemini-2.5-pro,meta:Llama-4-Maverick",
      MODELS_SYNTHESIS: "openai:gpt-5",
      META_API_KEY: "meta-key-0123456789",
      META_BASE_URL: "https://example.test/compat/v1",
      PROVIDER_CONCURRENCY: "openai=8, anthropic=2,default=6",
      TOOLS: "calculator",
      TOOLS_URL_READER: "true",
      DEFAULT_TIMEZONE: "Europe/Berlin",
      CONTEMPLATE_AGENT_TIMEOUT_SECONDS: "30",
    });
    expect(config.models.contemplating).toEqual([
      [ref("openai:gpt-5")],
      [ref("anthropic:claude-sonnet-4-5")],
      [ref("google:gemini-2.5-pro"), ref("meta:Llama-4-Maverick")],
    ]);
    expect(config.models.concurrency).toEqual({ default: 6, providers: { openai: 8, anthropic: 2 } });
    expect(config.tools).toEqual({ enabled: ["calculator", "url_reader"], maxSteps: 5, timeZone: "Europe/Berlin" });
    expect(config.contemplate.agentTimeoutMs).toBe(30_000);
    const modes = modeSettingsFrom(config);
    expect(modes.chains.thinking).toEqual([ref("anthropic:claude-sonnet-4-5"), ref("openai:gpt-5")]);
    expect(modes.contemplate.agents).toBe(3);
    expect(load({ MODELS_CONTEMPLATING: "openai:a|openai:b|openai:c|openai:d" }).contemplate.agents).toBe(4);
  });

  it.each([
    [{ MODEL_CAPABILITIES: "ollama:llava=imgs" }, 'MODEL_CAPABILITIES: "ollama:llava=imgs": unknown capability "imgs"'],
    [{ MODEL_CAPABILITIES: "nobody:x=images" }, 'MODEL_CAPABILITIES: "nobody:x=images": unknown provider "nobody"'],
    [{ MODEL_CAPABILITIES: "ollama:llava" }, 'MODEL_CAPABILITIES: "ollama:llava" is not <provider>:<model>=<value>'],
    [{ MODEL_CAPABILITIES: "ollama:llava=ctx=12" }, "MODEL_CAPABILITIES: \"ollama:llava=ctx=12\": ctx must be at least 512 tokens"],
    [{ MODEL_COSTS: "openai:gpt-5=cheap" }, 'MODEL_COSTS: "openai:gpt-5=cheap": the price must be <input>/<output>'],
    [{ PROVIDER_CONCURRENCY: "openai=0" }, 'PROVIDER_CONCURRENCY: "openai=0" is not <provider>=<1-256>'],
    [{ MODELS_CONTEMPLATING: "openai:a|nope" }, 'MODELS_CONTEMPLATING: "nope" is not provider:model'],
    [{ MODELS_CONTEMPLATING: "openai:a|openai:b", CONTEMPLATE_AGENTS: "1" }, "MODELS_CONTEMPLATING: has 2 chains separated by | but CONTEMPLATE_AGENTS is 1"],
    [{ MODELS_THINKING: "meta:muse-spark" }, "META_API_KEY: is required when MODELS_THINKING uses the meta provider"],
    [{ MODELS_SYNTHESIS: "openai-compatible:x" }, "OPENAI_COMPATIBLE_BASE_URL: is required when MODELS_SYNTHESIS uses the openai-compatible provider"],
    [{ MODELS_INSTANT: "", MODELS_THINKING: "openai:o3" }, "MODELS_INSTANT: is required when MODELS_THINKING is set"],
    [{ TOOLS: "time,weather" }, 'TOOLS: unknown tool "weather" (known: time, calculator, url_reader)'],
    [{ TOOLS: "url_reader" }, "TOOLS: url_reader fetches web pages; turn it on with TOOLS_URL_READER=true"],
    [{ DEFAULT_TIMEZONE: "Mars/Olympus" }, "DEFAULT_TIMEZONE: is not an IANA time zone"],
  ])("names the variable in the error: %j", (env, message) => {
    expect(failure(env)).toContain(message);
  });

  it("TOOLS= (empty) turns every tool off", () => {
    expect(load({ TOOLS: "" }).tools.enabled).toEqual([]);
  });
});

describe("capabilities and costs", () => {
  it("reads the override syntax", () => {
    expect(parseCapabilityOverrides("ollama:llava*=images+tools,ctx=8192; openai-compatible:foo=reasoning;openai:gpt-4o-mini=text;ollama:big=ctx=128k")).toEqual({
      ok: true,
      value: [
        { pattern: "ollama:llava*", flags: { images: true, tools: true, reasoning: false }, contextWindow: 8_192 },
        { pattern: "openai-compatible:foo", flags: { images: false, tools: false, reasoning: true } },
        { pattern: "openai:gpt-4o-mini", flags: { images: false, tools: false, reasoning: false } },
        { pattern: "ollama:big", contextWindow: 128_000 },
      ],
    });
  });

  it("looks up the table, with overrides first", () => {
    const parsed = parseCapabilityOverrides("ollama:llava*=images+tools,ctx=8192;openai:gpt-4o-mini=text;ollama:llama3.2*=ctx=4096");
    if (!parsed.ok) throw new Error(parsed.error);
    const caps = capabilityLookup(parsed.value);
    expect(caps(ref("ollama:llava:13b"))).toEqual({ contextWindow: 8_192, images: true, tools: true, reasoning: false });
    expect(caps(ref("openai:gpt-4o-mini"))).toEqual({ contextWindow: 128_000, images: false, tools: false, reasoning: false });
    expect(caps(ref("ollama:llama3.2:3b"))).toEqual({ contextWindow: 4_096, images: false, tools: true, reasoning: false });
    expect(caps(ref("openai:gpt-5"))).toEqual({ contextWindow: 400_000, images: true, tools: true, reasoning: true });
    expect(caps(ref("anthropic:claude-sonnet-4-5"))).toMatchObject({ images: true, tools: true, reasoning: true });
    expect(caps(ref("google:gemini-2.5-flash"))).toMatchObject({ images: true, reasoning: true });
    expect(caps(ref("openai-compatible:some-model"))).toEqual({ contextWindow: 32_768, images: false, tools: false, reasoning: false });
    expect(caps(ref("ollama:qwen3:8b"))).toMatchObject({ tools: true, reasoning: true, images: false });
  });

  it("prices calls from the table, with overrides, and records none for unknown models", () => {
    const parsed = parseCostOverrides("openai:gpt-5=2/20;openai-compatible:*=0.5/1");
    if (!parsed.ok) throw new Error(parsed.error);
    const cost = costLookup(parsed.value);
    expect(cost(ref("openai:gpt-5"), 1_000_000, 1_000_000)).toBe(22);
    expect(cost(ref("openai:gpt-5-mini"), 1_000_000, 1_000_000)).toBe(2.25);
    expect(cost(ref("openai-compatible:anything"), 2_000_000, 0)).toBe(1);
    expect(cost(ref("ollama:llama3.2"), 1_000, 1_000)).toBe(0);
    expect(costLookup()(ref("meta:muse-spark"), 1_000, 1_000)).toBeUndefined();
  });
});
