import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { messages, modelCalls } from "../src/db/schema.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer, type RecordedRequest } from "./fakes/openai-server.ts";
import { type FakeTelegram } from "./fakes/telegram-api.ts";
import { DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";
import { closeScene, openScene } from "./support/scene.ts";

/**
 * Muse Spark end to end: Telegram updates in through the fake Bot API, the real AI SDK Responses provider out to a fake
 * of Meta's Model API that answers HTTP 400 wherever Meta does (effort none, tool_choice other than auto, store: true,
 * and stop), so a forbidden field fails the answer as it would in production. Every request it saw is checked too.
 */

const KEY = "LLM|1234567890|fake-model-api-key-abcdef";
const EFFORTS = ["minimal", "low", "medium", "high", "xhigh"];
const waitFor = <T>(check: () => T | Promise<T>, timeout = 10_000) => vi.waitFor(check, { timeout, interval: 25 });
const body = (request: RecordedRequest | undefined) => (request?.body ?? {}) as Record<string, unknown>;

/** Nothing Meta refuses was sent, and Parley kept no state at Meta. */
function expectMetaRulesKept(requests: readonly RecordedRequest[]) {
  expect(requests.length).toBeGreaterThan(0);
  for (const request of requests) {
    const sent = body(request);
    expect(request.path).toBe("/v1/responses");
    expect(sent).not.toHaveProperty("stop");
    expect(sent.tool_choice === undefined || sent.tool_choice === "auto").toBe(true);
    expect(EFFORTS).toContain((sent.reasoning as { effort?: string } | undefined)?.effort);
    expect(sent.store).toBe(false);
  }
}

describe.each(DATABASE_KINDS)("Muse Spark through Meta's Model API on %s", (kind) => {
  let db: TestDatabase;
  let telegram: FakeTelegram;
  let model: FakeOpenAIServer;
  let meta: FakeOpenAIServer;
  let parley: TestParley | undefined;

  const start = async (extra: Record<string, string> = {}) =>
    (parley = await startTestParley(db, {
      TELEGRAM_BOT_TOKEN: telegram.token,
      TELEGRAM_API_ROOT: telegram.url,
      MODELS_INSTANT: "meta:muse-spark-1.2",
      META_BASE_URL: `${meta.url}/v1`,
      META_API_KEY: KEY,
      OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`,
      MODEL_RETRY_DELAY_SECONDS: "0.01",
      ACCESS_POLICY: "open",
      ...extra,
    }));
  const sentTexts = (chatId: number) =>
    telegram.sent
      .filter((c) => c.method === "sendMessage" && c.params.chat_id === chatId && c.errorCode === undefined)
      .map((c) => String(c.params.text));
  const ask = async (chatId: number, text: string) => {
    const before = sentTexts(chatId).length;
    telegram.pushUpdate(telegram.updates.privateText(text, { userId: chatId }));
    await waitFor(() => expect(sentTexts(chatId).length).toBeGreaterThan(before));
    return sentTexts(chatId).at(-1)!;
  };
  const calls = () => parley!.database.db.select().from(modelCalls).orderBy(modelCalls.id);

  beforeEach(async () => {
    ({ db, telegram, model } = await openScene(kind));
    meta = await startFakeOpenAIServer({ apiKey: KEY, wireRules: "meta" });
  });
  afterEach(async () => {
    await parley?.stop();
    parley = undefined;
    await meta.close();
    await closeScene({ db, telegram, model });
  });

  it("Instant answers from muse-spark-1.2 over the Responses API at the lowest effort, keyed by MODEL_API_KEY, cached input priced", async () => {
    meta.reply("muse-spark-1.2", { text: "Hello from Muse Spark.", usage: { promptTokens: 1_000, cachedTokens: 400, completionTokens: 200 } });
    await start({ META_API_KEY: "", MODEL_API_KEY: KEY });

    expect(await ask(201, "hello there")).toBe("Hello from Muse Spark.");
    const [request] = meta.requestsFor("muse-spark-1.2");
    expect(request).toMatchObject({ api: "responses", path: "/v1/responses", authorized: true, stream: true, lastUserText: "hello there" });
    expect(body(request)).toMatchObject({ model: "muse-spark-1.2", reasoning: { effort: "minimal" }, store: false });
    expect(body(request).reasoning).not.toHaveProperty("summary");
    expect(body(request).include).toContain("reasoning.encrypted_content");
    expect(JSON.stringify(body(request).tools ?? [])).not.toContain("web_search");
    expectMetaRulesKept(meta.requests);

    const [call] = await calls();
    expect(call).toMatchObject({ provider: "meta", model: "muse-spark-1.2", mode: "instant", ok: true, tokensIn: 1_000, tokensOut: 200 });
    // 600 uncached at 1.25, 400 cached at 0.15, 200 out at 4.25 per million.
    expect(call!.costUsd).toBeCloseTo((600 * 1.25 + 400 * 0.15 + 200 * 4.25) / 1_000_000, 12);
  });

  it("Thinking asks muse-spark-1.2 for high effort and a reasoning summary, which is kept for admins and never sent", async () => {
    meta.reply("muse-spark-1.2", { reasoning: "REASONING-CANARY: six sevens are forty-two", text: "The answer is 42." });
    await start();

    expect(await ask(202, "/think what is six times seven?")).toBe("The answer is 42.");
    for (const text of sentTexts(202)) expect(text).not.toContain("REASONING-CANARY");
    const [request] = meta.requestsFor("muse-spark-1.2");
    expect(body(request)).toMatchObject({ reasoning: { effort: "high", summary: "auto" }, store: false });
    expect(request?.systemText).toContain("Think the question through");
    expectMetaRulesKept(meta.requests);

    const [call] = await calls();
    expect(call).toMatchObject({ provider: "meta", model: "muse-spark-1.2", mode: "thinking", ok: true });
    expect(call!.reasoning).toContain("REASONING-CANARY");
  });

  it("Contemplating runs sub-agents on Muse Spark mixed with another provider, and the synthesis on Muse Spark", async () => {
    const museScript = (request: RecordedRequest) =>
      request.systemText?.includes("Several advisers")
        ? { text: "All told, the answer is 42.", reasoning: "weighing the drafts" }
        : { text: `DRAFT from ${request.model}: 42.`, reasoning: "working it out" };
    meta.reply("muse-spark-1.2", museScript);
    meta.reply("muse-spark-1.1", museScript);
    model.reply("agent-b", { text: "DRAFT-B: careful with units." });
    await start({
      MODELS_CONTEMPLATING: "meta:muse-spark-1.2|openai-compatible:agent-b|meta:muse-spark-1.1",
      MODELS_SYNTHESIS: "meta:muse-spark-1.2",
    });

    expect(await ask(203, "/contemplate what is six times seven?")).toBe("All told, the answer is 42.");
    const synthesis = meta.requests.find((r) => r.systemText?.includes("Several advisers"));
    for (const draft of ["DRAFT from muse-spark-1.2", "DRAFT-B", "DRAFT from muse-spark-1.1"]) expect(synthesis?.systemText).toContain(draft);
    expect(body(synthesis).reasoning).toEqual({ effort: "minimal" });
    const agents = meta.requests.filter((r) => r !== synthesis);
    expect(agents.map((r) => r.model).sort()).toEqual(["muse-spark-1.1", "muse-spark-1.2"]);
    for (const agent of agents) expect(body(agent).reasoning).toEqual({ effort: "high", summary: "auto" });
    expectMetaRulesKept(meta.requests);

    const rows = await calls();
    const parent = rows.find((c) => c.parentId === null)!;
    expect(parent).toMatchObject({ mode: "contemplating", provider: "parley", ok: true, error: null });
    expect(rows.filter((c) => c.parentId === parent.id).map((c) => [c.purpose, c.provider, c.model, c.ok]).sort()).toEqual([
      ["agent", "meta", "muse-spark-1.1", true],
      ["agent", "meta", "muse-spark-1.2", true],
      ["agent", "openai-compatible", "agent-b", true],
      ["synthesis", "meta", "muse-spark-1.2", true],
    ]);
  });

  it("a Meta 429 and a Meta 5xx each move on to the next model of the chain", async () => {
    meta.reply("muse-spark-1.2", { error: { status: 429, message: "Rate limit exceeded for muse-spark-1.2." } });
    meta.reply("muse-spark-1.1", { error: { status: 503, message: "The service is temporarily overloaded." } });
    await start({ MODELS_INSTANT: "meta:muse-spark-1.2,meta:muse-spark-1.1,openai-compatible:backup", MODEL_RETRIES: "1" });

    expect(await ask(204, "still there?")).toBe("echo: still there?");
    expect(meta.requestsFor("muse-spark-1.2").map((r) => r.path)).toEqual(["/v1/responses", "/v1/responses"]);
    expect(meta.requestsFor("muse-spark-1.1").map((r) => r.path)).toEqual(["/v1/responses", "/v1/responses"]);
    expectMetaRulesKept(meta.requests);
    const rows = await calls();
    expect(rows.map((c) => [c.provider, c.model, c.ok])).toEqual([
      ["meta", "muse-spark-1.2", false],
      ["meta", "muse-spark-1.1", false],
      ["openai-compatible", "backup", true],
    ]);
    expect(rows[0]!.error).toContain("HTTP 429");
    expect(rows[1]!.error).toContain("HTTP 503");
  });

  it("META_WEB_SEARCH offers Meta's server-side web search; the pages it cites are kept with the answer", async () => {
    meta.reply("muse-spark-1.2", {
      webSearch: { query: "parley release date", sources: [{ url: "https://example.org/news/parley", title: "Parley ships" }] },
      text: "Parley shipped this week.",
    });
    await start({ META_WEB_SEARCH: "true" });

    const reply = await ask(205, "when did parley ship?");
    expect(reply).toContain("Parley shipped this week.");
    expect(reply).toContain("Sources:");
    expect(reply).toContain('href="https://example.org/news/parley"');
    expect(reply).toContain("Parley ships");
    const [request] = meta.requestsFor("muse-spark-1.2");
    expect(body(request).tools).toEqual(expect.arrayContaining([expect.objectContaining({ type: "web_search" })]));
    expectMetaRulesKept(meta.requests);

    const [stored] = await parley!.database.db.select().from(messages).where(eq(messages.role, "assistant"));
    expect(stored?.text).toContain("https://example.org/news/parley");
    const [call] = await calls();
    expect(call?.tools).toEqual([
      expect.objectContaining({ name: "web_search", input: { type: "search", query: "parley release date" }, sources: ["https://example.org/news/parley"] }),
    ]);
  });
});
