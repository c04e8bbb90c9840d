import { createOpenAI } from "@ai-sdk/openai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { APICallError, experimental_transcribe, generateText, stepCountIs, streamText, tool, type TextStreamPart, type ToolSet } from "ai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { createProviderTools } from "../src/models/registry.ts";
import { providersFor, ref } from "./fakes/openai-providers.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer, type ScriptSource } from "./fakes/openai-server.ts";

const apiKey = "sk-test-fake";
let fake: FakeOpenAIServer;

beforeAll(async () => {
  fake = await startFakeOpenAIServer({ apiKey, models: ["listed-model"] });
});
afterAll(() => fake.close());
afterEach(() => fake.waitForIdle(1000));

/** Each test uses its own model names, so scripts on the shared server never leak between tests. */
function compatible(options: { key?: string; includeUsage?: boolean } = {}) {
  return createOpenAICompatible({
    name: "local",
    baseURL: `${fake.url}/v1`,
    apiKey: options.key ?? apiKey,
    includeUsage: options.includeUsage,
  });
}

function openai() {
  return createOpenAI({ baseURL: `${fake.url}/v1`, apiKey });
}

async function collect<T extends ToolSet>(stream: AsyncIterable<TextStreamPart<T>>): Promise<TextStreamPart<T>[]> {
  const parts: TextStreamPart<T>[] = [];
  for await (const part of stream) parts.push(part);
  return parts;
}

async function callError(promise: Promise<unknown>): Promise<APICallError> {
  const error = await promise.then(() => undefined, (caught: unknown) => caught);
  if (!APICallError.isInstance(error)) throw new Error(`expected an APICallError, got ${String(error)}`);
  return error;
}

const weatherTool = tool({
  description: "Current weather in a city",
  inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => ({ city, celsius: 21 }),
});

/** Asks for the weather tool first; once the tool result comes back, answers with it. */
const weatherScript: ScriptSource = (request) =>
  request.toolResults.length > 0
    ? { text: `It is ${JSON.parse(request.toolResults[0]!.output).celsius} degrees.` }
    : { toolCalls: [{ name: "weather", arguments: { city: "Oslo" } }] };

describe("fake OpenAI server: chat completions", () => {
  it("answers a non-streamed request with the scripted text and usage", async () => {
    fake.reply("plain", { text: "hello there", usage: { promptTokens: 11, completionTokens: 3 } });
    const result = await generateText({ model: compatible()("plain"), prompt: "hi" });
    expect(result.text).toBe("hello there");
    expect(result.finishReason).toBe("stop");
    expect(result.usage).toMatchObject({ inputTokens: 11, outputTokens: 3, totalTokens: 14 });
    const request = fake.requestsFor("plain")[0]!;
    expect(request).toMatchObject({ api: "chat", path: "/v1/chat/completions", stream: false, authorized: true, outcome: "completed" });
    expect(request.body).toMatchObject({ model: "plain", messages: [{ role: "user", content: "hi" }] });
    expect(request.headers.authorization).toBeUndefined();
  });

  it("echoes the last user message when unscripted, so history tests can assert on it", async () => {
    const result = await generateText({
      model: compatible()("echo-model"),
      system: "be brief",
      messages: [
        { role: "user", content: "first" },
        { role: "assistant", content: "echo: first" },
        { role: "user", content: "second" },
      ],
    });
    expect(result.text).toBe("echo: second");
    expect(fake.lastRequest()?.body).toMatchObject({
      messages: [
        { role: "system", content: "be brief" },
        { role: "user", content: "first" },
        { role: "assistant", content: "echo: first" },
        { role: "user", content: "second" },
      ],
    });
  });

  it("uses queued scripts once, in order, then the model's default", async () => {
    fake.reply("queue-model", { text: "default" });
    fake.replyOnce("queue-model", { text: "one" }, { text: "two" });
    const model = compatible()("queue-model");
    const texts = [];
    for (let i = 0; i < 3; i++) texts.push((await generateText({ model, prompt: "x" })).text);
    expect(texts).toEqual(["one", "two", "default"]);
  });

  it("streams text in several deltas and reports usage when include_usage is asked for", async () => {
    fake.reply("streamer", { chunks: ["Hel", "lo ", "wor", "ld"], usage: { promptTokens: 5, completionTokens: 4 } });
    const result = streamText({ model: compatible({ includeUsage: true })("streamer"), prompt: "hi" });
    const parts = await collect(result.fullStream);
    expect(parts.filter((part) => part.type === "text-delta").map((part) => part.text)).toEqual(["Hel", "lo ", "wor", "ld"]);
    expect(await result.text).toBe("Hello world");
    expect(await result.usage).toMatchObject({ inputTokens: 5, outputTokens: 4, totalTokens: 9 });
    expect(fake.lastRequest()?.body).toMatchObject({ stream: true, stream_options: { include_usage: true } });
  });

  it("waits delayMs before the headers and chunkDelayMs before each delta", async () => {
    fake.reply("slow", { text: "abcdefghi", chunks: 3, delayMs: 60, chunkDelayMs: 20 });
    const started = Date.now();
    const result = streamText({ model: compatible()("slow"), prompt: "x" });
    const parts = await collect(result.fullStream);
    expect(parts.filter((part) => part.type === "text-delta").map((part) => part.text)).toEqual(["abc", "def", "ghi"]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(110);
  });

  it("sends no usage chunk when the client did not ask for one", async () => {
    const result = streamText({ model: compatible()("no-usage"), prompt: "quiet" });
    expect(await result.text).toBe("echo: quiet");
    expect((await result.usage).inputTokens).toBeUndefined();
  });

  it("streams reasoning_content as reasoning-delta parts before the text", async () => {
    fake.reply("thinker", { reasoning: "Two plus two is four.", text: "4" });
    const result = streamText({ model: compatible()("thinker"), prompt: "2+2?" });
    const parts = await collect(result.fullStream);
    const reasoning = parts.filter((part) => part.type === "reasoning-delta");
    expect(reasoning.length).toBeGreaterThan(1);
    expect(reasoning.map((part) => part.text).join("")).toBe("Two plus two is four.");
    const types = parts.map((part) => part.type);
    expect(types.indexOf("reasoning-end")).toBeLessThan(types.indexOf("text-start"));
    expect(await result.reasoningText).toBe("Two plus two is four.");
    expect(await result.text).toBe("4");
  });

  it("returns reasoning_content of a non-streamed answer as reasoning", async () => {
    fake.reply("thinker-2", { reasoning: "Easy.", text: "4" });
    const result = await generateText({ model: compatible()("thinker-2"), prompt: "2+2?" });
    expect(result.reasoningText).toBe("Easy.");
    expect(result.text).toBe("4");
  });

  it.each([
    ["generateText", false],
    ["streamText", true],
  ])("runs a tool call round trip with %s", async (_name, streamed) => {
    const model = `tools-${streamed}`;
    fake.reply(model, weatherScript);
    const options = { model: compatible()(model), prompt: "Weather in Oslo?", tools: { weather: weatherTool }, stopWhen: stepCountIs(3) };
    const result = streamed ? streamText(options) : await generateText(options);
    expect(await result.text).toBe("It is 21 degrees.");
    expect(await result.steps).toHaveLength(2);
    const [first, second] = fake.requestsFor(model);
    expect(first?.body).toMatchObject({ tools: [{ type: "function", function: { name: "weather" } }] });
    const call = (await result.steps)[0]!.toolCalls[0]!;
    expect(call).toMatchObject({ toolName: "weather", input: { city: "Oslo" } });
    expect(second?.toolResults).toEqual([{ callId: call.toolCallId, output: JSON.stringify({ city: "Oslo", celsius: 21 }) }]);
    expect(second?.body).toMatchObject({
      messages: [
        { role: "user" },
        { role: "assistant", tool_calls: [{ id: call.toolCallId, type: "function", function: { name: "weather" } }] },
        { role: "tool", tool_call_id: call.toolCallId },
      ],
    });
  });

  it("sends an image part as an image_url content part with a data: URL", async () => {
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]);
    const result = await generateText({
      model: compatible()("vision"),
      messages: [{ role: "user", content: [{ type: "text", text: "what is this?" }, { type: "image", image: png, mediaType: "image/png" }] }],
    });
    expect(result.text).toBe("echo: what is this?");
    expect(fake.lastRequest()?.body).toMatchObject({
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "what is this?" },
            { type: "image_url", image_url: { url: `data:image/png;base64,${Buffer.from(png).toString("base64")}` } },
          ],
        },
      ],
    });
  });

  it("serves several providers and models from one server", async () => {
    fake.reply("deepseek-chat", { text: "from deepseek" });
    fake.reply("gpt-4o-mini", { text: "from openai" });
    const viaCompatible = await generateText({ model: compatible()("deepseek-chat"), prompt: "a" });
    const viaOpenAIChat = await generateText({ model: openai().chat("gpt-4o-mini"), prompt: "b" });
    expect([viaCompatible.text, viaOpenAIChat.text]).toEqual(["from deepseek", "from openai"]);
    expect(fake.requestsFor("deepseek-chat").map((request) => request.lastUserText)).toEqual(["a"]);
    expect(fake.requestsFor("gpt-4o-mini").map((request) => request.lastUserText)).toEqual(["b"]);
  });

  it("streams tool calls and text to @ai-sdk/openai's chat model as well", async () => {
    fake.reply("gpt-tools", weatherScript);
    const result = streamText({ model: openai().chat("gpt-tools"), prompt: "Weather?", tools: { weather: weatherTool }, stopWhen: stepCountIs(3) });
    expect(await result.text).toBe("It is 21 degrees.");
    expect((await result.totalUsage).inputTokens).toBeGreaterThan(0);
    expect(fake.requestsFor("gpt-tools")[0]?.body).toMatchObject({ stream_options: { include_usage: true } });
  });
});

describe("fake OpenAI server: errors", () => {
  it("answers 429 with retry-after, which the SDK reports as a retryable APICallError", async () => {
    fake.reply("limited", { error: { status: 429, message: "Slow down", retryAfterSeconds: 7 } });
    const error = await callError(generateText({ model: compatible()("limited"), prompt: "x", maxRetries: 0 }));
    expect(error).toMatchObject({ statusCode: 429, isRetryable: true, message: "Slow down" });
    expect(error.responseHeaders?.["retry-after"]).toBe("7");
    expect(JSON.parse(error.responseBody ?? "")).toEqual({
      error: { message: "Slow down", type: "requests", param: null, code: "rate_limit_exceeded" },
    });
  });

  it("lets the SDK's retry honour retry-after", async () => {
    fake.replyOnce("limited-once", { error: { status: 429, retryAfterSeconds: 0.05 } });
    fake.reply("limited-once", { text: "made it" });
    const started = Date.now();
    const result = await generateText({ model: compatible()("limited-once"), prompt: "x", maxRetries: 1 });
    expect(result.text).toBe("made it");
    // The SDK's own backoff would wait 2 s; retry-after asked for 50 ms.
    expect(Date.now() - started).toBeLessThan(1500);
    expect(fake.requestsFor("limited-once")).toHaveLength(2);
  });

  it.each([
    [500, true],
    [503, true],
    [400, false],
  ])("maps status %i to an APICallError with isRetryable %s", async (status, retryable) => {
    const model = `status-${status}`;
    fake.reply(model, { error: { status, message: `failed with ${status}` } });
    const error = await callError(generateText({ model: compatible()(model), prompt: "x", maxRetries: 0 }));
    expect(error).toMatchObject({ statusCode: status, isRetryable: retryable, message: `failed with ${status}` });
  });

  it("rejects a wrong or missing API key with 401 in OpenAI's shape", async () => {
    const wrong = await callError(generateText({ model: compatible({ key: "sk-wrong" })("guarded"), prompt: "x", maxRetries: 0 }));
    expect(wrong).toMatchObject({ statusCode: 401, isRetryable: false, message: "Incorrect API key provided." });
    const missing = createOpenAICompatible({ name: "anonymous", baseURL: `${fake.url}/v1` });
    const none = await callError(generateText({ model: missing("guarded"), prompt: "x", maxRetries: 0 }));
    expect(none).toMatchObject({ statusCode: 401, message: "You didn't provide an API key." });
    expect(fake.requestsFor("guarded").map((request) => request.authorized)).toEqual([false, false]);
    expect(fake.requestsFor("guarded").every((request) => request.headers.authorization === undefined)).toBe(true);
  });

  it("holds a hung request until the client aborts, and sees the connection close", async () => {
    fake.reply("hanging", { hang: true });
    const before = fake.requests.length;
    const pending = generateText({ model: compatible()("hanging"), prompt: "x", maxRetries: 0, abortSignal: AbortSignal.timeout(300) });
    const request = (await fake.waitForRequests(before + 1)).at(-1);
    expect(fake.activeRequests).toBe(1);
    await expect(pending).rejects.toMatchObject({ name: expect.stringMatching(/TimeoutError|AbortError/) });
    await fake.waitForIdle(1000);
    expect(request?.outcome).toBe("client-aborted");
  });

  it("cuts a stream after some chunks; ai@6 throws a retryable APICallError from the stream after the deltas", async () => {
    fake.reply("cutter", { chunks: ["a", "b", "c", "d"], cutAfterChunks: 2 });
    const errors: unknown[] = [];
    const result = streamText({ model: compatible()("cutter"), prompt: "x", maxRetries: 0, onError: ({ error }) => void errors.push(error) });
    const deltas: string[] = [];
    const thrown = await (async () => {
      for await (const part of result.fullStream) if (part.type === "text-delta") deltas.push(part.text);
    })().then(() => undefined, (error: unknown) => error);
    expect(deltas).toEqual(["a", "b"]);
    expect(APICallError.isInstance(thrown)).toBe(true);
    expect(thrown).toMatchObject({ message: "Failed to process successful response", isRetryable: true, cause: { message: "terminated" } });
    // A broken connection is not an "error" part: onError is not called and the stream itself rejects.
    expect(errors).toEqual([]);
    await expect(result.text).rejects.toBe(thrown);
    await fake.waitForIdle(1000);
    expect(fake.lastRequest()?.outcome).toBe("cut");
  });

  it("answers an unknown path with 404 in OpenAI's shape", async () => {
    const response = await fetch(`${fake.url}/v1/nothing`, { method: "POST", headers: { authorization: `Bearer ${apiKey}` } });
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: { message: "Invalid URL (POST /v1/nothing)", type: "invalid_request_error", param: null, code: null } });
  });
});

describe("fake OpenAI server: other endpoints", () => {
  it("lists configured and scripted models on GET /v1/models", async () => {
    fake.reply("scripted-model", { text: "x" });
    const response = await fetch(`${fake.url}/v1/models`, { headers: { authorization: `Bearer ${apiKey}` } });
    const body = (await response.json()) as { object: string; data: { id: string; object: string }[] };
    expect(body.object).toBe("list");
    expect(body.data.map((model) => model.id)).toEqual(expect.arrayContaining(["listed-model", "scripted-model"]));
    expect(body.data.every((model) => model.object === "model")).toBe(true);
    expect((await fetch(`${fake.url}/v1/models`)).status).toBe(401);
  });

  it("transcribes audio sent as multipart form data", async () => {
    fake.reply("whisper-1", { text: "hello from a voice note" });
    const audio = new Uint8Array([0x4f, 0x67, 0x67, 0x53, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const result = await experimental_transcribe({ model: openai().transcription("whisper-1"), audio });
    expect(result.text).toBe("hello from a voice note");
    expect(fake.lastRequest()).toMatchObject({
      api: "transcription",
      path: "/v1/audio/transcriptions",
      model: "whisper-1",
      body: { model: "whisper-1", file: { size: audio.length } },
    });
  });
});

describe("fake OpenAI server: Responses API", () => {
  it("answers openai(model) without streaming, reasoning included", async () => {
    fake.reply("resp-plain", { text: "hi from responses", reasoning: "short thought", usage: { promptTokens: 7, completionTokens: 5 } });
    const result = await generateText({ model: openai()("resp-plain"), prompt: "hello" });
    expect(result.text).toBe("hi from responses");
    expect(result.reasoningText).toBe("short thought");
    expect(result.usage).toMatchObject({ inputTokens: 7, outputTokens: 5 });
    expect(fake.lastRequest()).toMatchObject({ api: "responses", path: "/v1/responses", lastUserText: "hello", stream: false });
  });

  it("streams text and reasoning summary deltas", async () => {
    fake.reply("resp-stream", { chunks: ["one ", "two ", "three"], reasoning: "counting up" });
    const result = streamText({ model: openai()("resp-stream"), prompt: "count" });
    const parts = await collect(result.fullStream);
    expect(parts.filter((part) => part.type === "text-delta").map((part) => part.text)).toEqual(["one ", "two ", "three"]);
    expect(parts.filter((part) => part.type === "reasoning-delta").map((part) => part.text).join("")).toBe("counting up");
    expect(await result.finishReason).toBe("stop");
    expect((await result.usage).inputTokens).toBeGreaterThan(0);
  });

  it.each([
    ["generateText", false],
    ["streamText", true],
  ])("runs a tool call round trip with %s", async (_name, streamed) => {
    const model = `resp-tools-${streamed}`;
    fake.reply(model, weatherScript);
    const options = { model: openai()(model), prompt: "Weather in Oslo?", tools: { weather: weatherTool }, stopWhen: stepCountIs(3) };
    const result = streamed ? streamText(options) : await generateText(options);
    expect(await result.text).toBe("It is 21 degrees.");
    const call = (await result.steps)[0]!.toolCalls[0]!;
    expect(fake.requestsFor(model)[1]?.toolResults).toEqual([{ callId: call.toolCallId, output: JSON.stringify({ city: "Oslo", celsius: 21 }) }]);
    expect(fake.requestsFor(model)[1]?.body).toMatchObject({
      input: expect.arrayContaining([expect.objectContaining({ type: "function_call", call_id: call.toolCallId, name: "weather" })]),
    });
  });

  it("resolves item references to earlier output and rejects unknown ones", async () => {
    const first = await generateText({ model: openai()("resp-history"), prompt: "one" });
    const second = await generateText({
      model: openai()("resp-history"),
      messages: [{ role: "user", content: "one" }, ...first.response.messages, { role: "user", content: "two" }],
    });
    expect(second.text).toBe("echo: two");
    expect(fake.lastRequest()?.body).toMatchObject({ input: [{ role: "user" }, { type: "item_reference" }, { role: "user" }] });
    const forged = await callError(
      generateText({
        model: openai()("resp-history"),
        maxRetries: 0,
        messages: [{ role: "assistant", content: [{ type: "text", text: "x", providerOptions: { openai: { itemId: "msg_unknown" } } }] }, { role: "user", content: "y" }],
      }),
    );
    expect(forged).toMatchObject({ statusCode: 404, message: "Item with id 'msg_unknown' not found." });
  });
});

describe("fake OpenAI server: Responses API, Meta's Model API features", () => {
  it("reports cached input tokens, and encrypted reasoning when include asks for it", async () => {
    fake.reply("resp-cached", { text: "cached", reasoning: "thought", usage: { promptTokens: 50, cachedTokens: 20, completionTokens: 5 } });
    const result = await generateText({
      model: openai().responses("resp-cached"),
      prompt: "hi",
      providerOptions: { openai: { store: false, forceReasoning: true, reasoningEffort: "low" } },
    });
    expect(result.usage).toMatchObject({ inputTokens: 50, inputTokenDetails: { cacheReadTokens: 20, noCacheTokens: 30 }, outputTokens: 5 });
    expect(fake.lastRequest()?.body).toMatchObject({ store: false, include: ["reasoning.encrypted_content"] });
    expect(result.reasoning[0]?.providerMetadata?.openai?.reasoningEncryptedContent).toEqual(expect.any(String));
  });

  it.each([
    ["generateText", false],
    ["streamText", true],
  ])("runs a server-side web search with %s: the call, its sources and the url citations", async (_name, streamed) => {
    const model = `resp-search-${streamed}`;
    fake.reply(model, { webSearch: { query: "q", sources: [{ url: "https://example.org/a", title: "A" }] }, text: "Found it." });
    // Parley's own web search tool set: the SDK's provider-defined web_search.
    const providers = providersFor(fake.url);
    const tools = createProviderTools({ ...providers, meta: { ...providers.meta, webSearch: true } })(ref("meta:any"))!;
    const options = { model: openai().responses(model), prompt: "search", tools };
    const result = streamed ? streamText(options) : await generateText(options);
    expect(await result.text).toBe("Found it.");
    expect((await result.sources).map((source) => (source.sourceType === "url" ? [source.url, source.title] : []))).toEqual([["https://example.org/a", "A"]]);
    const [search] = (await result.steps)[0]!.toolResults;
    expect(search).toMatchObject({ toolName: "web_search", providerExecuted: true, output: { action: { type: "search", query: "q" }, sources: [{ type: "url", url: "https://example.org/a" }] } });
    expect(fake.lastRequest()?.body).toMatchObject({ tools: [{ type: "web_search" }], include: ["web_search_call.action.sources"] });
  });

  it.each([
    [{ reasoning: { effort: "none" } }, "reasoning.effort"],
    [{ tool_choice: "required" }, "tool_choice"],
    [{ tool_choice: { type: "function", name: "x" } }, "tool_choice"],
    [{ stop: ["END"] }, "stop"],
    [{ store: true }, "store"],
  ])("as Meta's Model API, answers 400 to %j", async (extra, field) => {
    const meta = await startFakeOpenAIServer({ wireRules: "meta" });
    try {
      const response = await fetch(`${meta.url}/v1/responses`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "muse-spark-1.2", input: "hi", ...extra }),
      });
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: { message: string } }).error.message).toContain(field);
      const ok = await fetch(`${meta.url}/v1/responses`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "muse-spark-1.2", input: "hi", store: false, tool_choice: "auto", reasoning: { effort: "minimal" } }),
      });
      expect(ok.status).toBe(200);
    } finally {
      await meta.close();
    }
  });
});

describe("fake OpenAI server: lifecycle", () => {
  it("closes with a hung request open, and the client sees the connection drop", async () => {
    const own = await startFakeOpenAIServer();
    own.reply("stuck", { hang: true });
    const provider = createOpenAICompatible({ name: "own", baseURL: `${own.url}/v1` });
    const pending = generateText({ model: provider("stuck"), prompt: "x", maxRetries: 0 });
    await own.waitForRequests(1);
    await own.close();
    await expect(pending).rejects.toThrow();
    expect(own.activeRequests).toBe(0);
    expect(own.requests[0]?.outcome).toBe("server-closed");
  });

  it("reports a timeout when the expected requests never arrive", async () => {
    await expect(fake.waitForRequests(fake.requests.length + 1, 50)).rejects.toThrow(/expected \d+ requests/);
  });
});
