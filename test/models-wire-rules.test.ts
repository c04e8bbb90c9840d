import { streamText, tool, type ModelMessage } from "ai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { capabilityLookup } from "../src/models/capabilities.ts";
import { costLookup } from "../src/models/costs.ts";
import { createModelFactory } from "../src/models/registry.ts";
import { createRouter, type CallRecord } from "../src/models/router.ts";
import { applyWireRules, nearestEffort, WIRE_RULES, type CallOptions } from "../src/models/wire-rules.ts";
import { providersFor, ref } from "./fakes/openai-providers.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { captureLogs } from "./support/logs.ts";

/**
 * Meta's wire rules: the pure guard by a table, then the guard in place around the real Responses provider against a
 * fake that answers HTTP 400 where Meta's Model API does; Muse models' capabilities, prices and image routing.
 */

const meta = WIRE_RULES.meta!;
const base: CallOptions = { prompt: [{ role: "user", content: [{ type: "text", text: "hi" }] }] };
const fn = (name: string) => ({ type: "function" as const, name, inputSchema: { type: "object" as const, properties: {} } });

describe("Meta's wire rules (pure)", () => {
  it.each<[string, Partial<CallOptions>, Partial<CallOptions>]>([
    ["effort none → minimal", { providerOptions: { openai: { reasoningEffort: "none" } } }, { providerOptions: { openai: { reasoningEffort: "minimal", store: false } } }],
    ["effort max → xhigh", { providerOptions: { openai: { reasoningEffort: "max" } } }, { providerOptions: { openai: { reasoningEffort: "xhigh", store: false } } }],
    ["effort high kept", { providerOptions: { openai: { reasoningEffort: "high" } } }, { providerOptions: { openai: { reasoningEffort: "high", store: false } } }],
    ["an unknown effort dropped", { providerOptions: { openai: { reasoningEffort: "turbo" } } }, { providerOptions: { openai: { store: false } } }],
    ["store true → false", { providerOptions: { openai: { store: true } } }, { providerOptions: { openai: { store: false } } }],
    ["stop sequences dropped", { stopSequences: ["END"] }, { providerOptions: { openai: { store: false } } }],
    ["allowed_tools dropped", { providerOptions: { openai: { allowedTools: { toolNames: ["a"], mode: "required" } } } }, { providerOptions: { openai: { store: false } } }],
    ["tool choice required → auto", { tools: [fn("a")], toolChoice: { type: "required" } }, { tools: [fn("a")], toolChoice: { type: "auto" } }],
    ["named tool → auto with that tool only", { tools: [fn("a"), fn("b")], toolChoice: { type: "tool", toolName: "b" } }, { tools: [fn("b")], toolChoice: { type: "auto" } }],
    ["tool choice none → no tools", { tools: [fn("a")], toolChoice: { type: "none" } }, {}],
    ["tool choice auto kept", { tools: [fn("a")], toolChoice: { type: "auto" } }, { tools: [fn("a")], toolChoice: { type: "auto" } }],
  ])("%s", (_name, given, expected) => {
    const { options, changes } = applyWireRules(meta, { ...base, ...given });
    expect(options).toEqual({ providerOptions: { openai: { store: false } }, ...base, ...expected });
    expect(changes.length).toBeGreaterThan(0);
  });

  it("changes nothing in a call that keeps the rules, and other providers have none", () => {
    const kept: CallOptions = { ...base, tools: [fn("a")], toolChoice: { type: "auto" }, providerOptions: { openai: { reasoningEffort: "low", store: false } } };
    expect(applyWireRules(meta, kept)).toEqual({ options: kept, changes: [] });
    expect(WIRE_RULES.openai).toBeUndefined();
    expect(nearestEffort("medium", ["low", "high"])).toBe("low");
    expect(nearestEffort("none", [])).toBeUndefined();
  });
});

describe("Muse Spark through the real Responses provider", () => {
  let fake: FakeOpenAIServer;
  beforeEach(async () => {
    fake = await startFakeOpenAIServer({ wireRules: "meta" });
  });
  afterEach(() => fake.close());

  const weather = tool({ description: "weather", inputSchema: z.object({ city: z.string() }), execute: async () => "sunny" });
  const clock = tool({ description: "time", inputSchema: z.object({}), execute: async () => "noon" });

  it("never sends what Meta refuses, whatever the caller asks for", async () => {
    const model = createModelFactory(providersFor(fake.url))(ref("meta:muse-spark-1.2"));
    const asked = [
      { toolChoice: "required" as const, stopSequences: ["END"], providerOptions: { openai: { reasoningEffort: "none", store: true } } },
      { toolChoice: { type: "tool" as const, toolName: "weather" as const }, providerOptions: { openai: { reasoningEffort: "max", forceReasoning: true } } },
      { toolChoice: "none" as const, providerOptions: { openai: { reasoningEffort: "minimal", forceReasoning: true } } },
    ];
    for (const options of asked) {
      const result = streamText({ model, prompt: "hello", tools: { weather, clock }, maxRetries: 0, ...options });
      expect(await result.text).toBe("echo: hello");
    }
    const bodies = fake.requests.map((r) => r.body as Record<string, unknown>);
    expect(fake.requests.map((r) => r.path)).toEqual(["/v1/responses", "/v1/responses", "/v1/responses"]);
    for (const sent of bodies) {
      expect(sent).not.toHaveProperty("stop");
      expect(sent.store).toBe(false);
      expect(sent.tool_choice === undefined || sent.tool_choice === "auto").toBe(true);
    }
    expect(bodies.map((b) => (b.tools as Array<{ name: string }> | undefined)?.map((t) => t.name))).toEqual([["weather", "clock"], ["weather"], undefined]);
    expect(bodies.map((b) => (b.reasoning as { effort?: string } | undefined)?.effort)).toEqual([undefined, "xhigh", "minimal"]);
  });

  it("routes an image to Muse Spark past a text-only model, and prices its cached input", async () => {
    const records: CallRecord[] = [];
    const router = createRouter({
      chain: [ref("openai-compatible:text-only"), ref("meta:muse-spark-1.2")],
      models: createModelFactory(providersFor(fake.url)),
      record: async (call) => void records.push(call),
      log: captureLogs().log,
      timeoutMs: 5_000,
    });
    fake.reply("muse-spark-1.2", { text: "A red square.", usage: { promptTokens: 2_000, cachedTokens: 1_000, completionTokens: 100 } });
    const png = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAEklEQVR4nGNgYPj/nwEKGBgYADPqAv6JwBSYAAAAAElFTkSuQmCC", "base64");
    const messages: ModelMessage[] = [{ role: "user", content: [{ type: "text", text: "what is this?" }, { type: "image", image: png, mediaType: "image/png" }] }];
    const answer = await router.stream({ system: "test", messages, requires: { images: true }, signal: new AbortController().signal, trace: { purpose: "answer" } });
    expect(answer).toMatchObject({ text: "A red square.", ref: ref("meta:muse-spark-1.2"), tokensIn: 2_000, tokensOut: 100 });
    expect(answer.costUsd).toBeCloseTo((1_000 * 1.25 + 1_000 * 0.15 + 100 * 4.25) / 1_000_000, 12);
    expect(fake.requestsFor("text-only")).toHaveLength(0);
    expect(fake.requestsFor("muse-spark-1.2")[0]).toMatchObject({ api: "responses", imageCount: 1, lastUserText: "what is this?" });
  });

  it("knows every Muse model Meta serves: capabilities and list prices, cached input included", () => {
    const caps = capabilityLookup();
    for (const model of ["muse-spark-1.1", "muse-spark-1.2", "muse-spark-1.3", "muse-ember-1.0", "muse-spark-1.2-contributor"]) {
      expect(caps(ref(`meta:${model}`))).toEqual({ contextWindow: 1_048_576, images: true, tools: true, reasoning: true });
    }
    const cost = costLookup();
    const million = 1_000_000;
    for (const model of ["muse-spark-1.1", "muse-spark-1.2", "muse-spark-1.3"]) {
      expect(cost(ref(`meta:${model}`), million, million)).toBeCloseTo(1.25 + 4.25);
      expect(cost(ref(`meta:${model}`), million, 0, million)).toBeCloseTo(0.15);
      expect(cost(ref(`meta:${model}-contributor`), million, million, million / 2)).toBeCloseTo(0.05 + 0.001 + 0.2);
    }
    expect(cost(ref("meta:muse-ember-1.0"), million, million)).toBeCloseTo(0.1 + 0.5);
  });
});
