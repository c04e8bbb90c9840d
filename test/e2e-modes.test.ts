import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { messages, modelCalls, users } from "../src/db/schema.ts";
import { FALLBACK_NOTE } from "../src/modes/contemplate-prompts.ts";
import { type FakeOpenAIServer, type RecordedRequest } from "./fakes/openai-server.ts";
import { type FakeTelegram } from "./fakes/telegram-api.ts";
import { DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";
import { closeScene, openScene } from "./support/scene.ts";

/**
 * The three modes end to end: Telegram updates in through the fake Bot API, the real AI SDK providers out to the fake
 * model server (openai-compatible, ollama and meta all point at it), replies and model_calls checked.
 */

const waitFor = <T>(check: () => T | Promise<T>, timeout = 10_000) => vi.waitFor(check, { timeout, interval: 25 });
const body = (request: RecordedRequest | undefined) => (request?.body ?? {}) as Record<string, unknown>;

describe.each(DATABASE_KINDS)("modes end to end on %s", (kind) => {
  let db: TestDatabase;
  let telegram: FakeTelegram;
  let model: FakeOpenAIServer;
  let parley: TestParley | undefined;

  const start = async (extra: Record<string, string> = {}) =>
    (parley = await startTestParley(db, {
      TELEGRAM_BOT_TOKEN: telegram.token,
      TELEGRAM_API_ROOT: telegram.url,
      MODELS_INSTANT: "openai-compatible:fast-model",
      MODELS_THINKING: "openai-compatible:think-model",
      MODELS_CONTEMPLATING: "openai-compatible:agent-a|ollama:agent-b|meta:agent-c",
      MODELS_SYNTHESIS: "openai-compatible:synth-model",
      MODEL_CAPABILITIES: "openai-compatible:think-model=reasoning;openai-compatible:tool-model=tools",
      OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`,
      OPENAI_COMPATIBLE_API_KEY: "sk-test-compatible-key-0123456789",
      OLLAMA_BASE_URL: model.url,
      META_BASE_URL: `${model.url}/v1`,
      META_API_KEY: "meta-test-key-0123456789",
      MODEL_RETRY_DELAY_SECONDS: "0.01",
      ACCESS_POLICY: "open",
      ...extra,
    }));
  const sentTexts = (chatId: number) =>
    telegram.sent
      .filter((c) => c.method === "sendMessage" && c.params.chat_id === chatId && c.errorCode === undefined)
      .map((c) => String(c.params.text));
  const draftTexts = (chatId: number) =>
    telegram.sent.filter((c) => c.method === "sendMessageDraft" && c.params.chat_id === chatId).map((c) => String(c.params.text));
  const ask = async (chatId: number, text: string) => {
    const before = sentTexts(chatId).length;
    telegram.pushUpdate(telegram.updates.privateText(text, { userId: chatId }));
    await waitFor(() => expect(sentTexts(chatId).length).toBeGreaterThan(before));
    return sentTexts(chatId).at(-1)!;
  };

  beforeEach(async () => {
    ({ db, telegram, model } = await openScene(kind));
  });
  afterEach(async () => {
    await parley?.stop();
    parley = undefined;
    await closeScene({ db, telegram, model });
  });

  it("/mode shows and sets the default mode; Thinking then shows a status, reasons hard, and keeps its reasoning for admins", async () => {
    model.reply("think-model", { reasoning: "REASONING-CANARY: six sevens are forty-two", text: "The answer is 42.", delayMs: 600 });
    await start();

    const shown = await ask(101, "/mode");
    expect(shown).toContain("Your default mode is Instant.");
    expect(shown).toContain("/mode thinking");
    expect(await ask(101, "/mode sideways")).toMatch(/I don't know the mode (&quot;|")sideways/);
    expect(await ask(101, "/mode thinking")).toContain("Done: your default mode is now Thinking.");
    const [user] = await parley!.database.db.select().from(users).where(eq(users.key, "telegram:101"));
    expect(user?.defaultMode).toBe("thinking");

    expect(await ask(101, "what is six times seven?")).toBe("The answer is 42.");
    expect(draftTexts(101)).toContain("Thinking…");
    for (const text of [...sentTexts(101), ...draftTexts(101)]) expect(text).not.toContain("REASONING-CANARY");

    const request = model.requestsFor("think-model")[0];
    expect(body(request)).toMatchObject({ reasoning_effort: "high" });
    expect(request?.systemText).toContain("Think the question through");
    expect(model.requestsFor("fast-model")).toHaveLength(0);

    const calls = await parley!.database.db.select().from(modelCalls);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ model: "think-model", purpose: "answer", mode: "thinking", ok: true });
    expect(calls[0]!.reasoning).toContain("REASONING-CANARY");
    const stored = await parley!.database.db.select().from(messages).where(eq(messages.role, "assistant"));
    expect(stored.map((m) => [m.text, m.mode])).toEqual([["The answer is 42.", "thinking"]]);
  });

  it("/think answers one message in Thinking mode and leaves the default; tools only go to models that take them", async () => {
    await start();
    expect(await ask(102, "/think")).toContain("Write your question after the command");
    expect(await ask(102, "/think Is 1001 prime?")).toBe("echo: Is 1001 prime?");
    expect(model.requestsFor("think-model").map((r) => r.lastUserText)).toEqual(["Is 1001 prime?"]);
    expect(await ask(102, "and 1003?")).toBe("echo: and 1003?");
    expect(model.requestsFor("fast-model")).toHaveLength(1);
    // fast-model has no tools capability: no tools in its request.
    expect(body(model.requestsFor("fast-model")[0])).not.toHaveProperty("tools");

    const stored = await parley!.database.db.select().from(messages).orderBy(messages.id);
    expect(stored.map((m) => [m.role, m.text, m.mode])).toEqual([
      ["user", "Is 1001 prime?", null],
      ["assistant", "echo: Is 1001 prime?", "thinking"],
      ["user", "and 1003?", null],
      ["assistant", "echo: and 1003?", "instant"],
    ]);
  });

  it("/contemplate runs three agents on their own providers in parallel, shows progress, and streams the synthesis; the calls form a tree", async () => {
    // Progress shows from 300 ms on (REPLY_QUIET_MS): the first agent answers after that.
    model.reply("agent-a", { text: "DRAFT-A: 42 directly.", delayMs: 500 });
    model.reply("agent-b", { text: "DRAFT-B: careful with units.", delayMs: 700 });
    model.reply("agent-c", { text: "DRAFT-C: they want a number.", delayMs: 1_200 });
    model.reply("synth-model", { text: "All told, the answer is 42.", delayMs: 800, chunks: 4 });
    await start();

    expect(await ask(103, "/contemplate what is six times seven?")).toBe("All told, the answer is 42.");
    const drafts = draftTexts(103);
    expect(drafts[0]).toBe("3 agents working…");
    expect(drafts).toContain("Writing the answer…");
    expect(drafts.some((d) => /^[12] of 3 done…$/.test(d))).toBe(true);
    for (const text of [...sentTexts(103), ...drafts]) expect(text).not.toMatch(/DRAFT-[ABC]/);

    const agents = ["agent-a", "agent-b", "agent-c"].map((name) => model.requestsFor(name)[0]);
    expect(agents.map((r) => r?.lastUserText)).toEqual(Array(3).fill("what is six times seven?"));
    expect(agents[0]?.systemText).toContain("Solve it directly");
    expect(agents[1]?.systemText).toContain("Look for what could be wrong");
    expect(agents[2]?.systemText).toContain("what the user really needs");
    const synthesis = model.requestsFor("synth-model")[0];
    for (const draft of ["DRAFT-A", "DRAFT-B", "DRAFT-C"]) expect(synthesis?.systemText).toContain(draft);
    expect(synthesis?.systemText).not.toContain("Missing angles");

    const calls = await parley!.database.db.select().from(modelCalls).orderBy(modelCalls.id);
    const parent = calls.find((c) => c.parentId === null);
    expect(parent).toMatchObject({ purpose: "answer", mode: "contemplating", provider: "parley", ok: true, error: null });
    expect(parent!.tokensOut).toBeGreaterThan(0);
    const children = calls.filter((c) => c.parentId === parent!.id);
    expect(children.map((c) => [c.purpose, c.provider, c.model]).sort()).toEqual([
      ["agent", "meta", "agent-c"],
      ["agent", "ollama", "agent-b"],
      ["agent", "openai-compatible", "agent-a"],
      ["synthesis", "openai-compatible", "synth-model"],
    ]);
    expect(children.every((c) => c.ok && c.inboxId === parent!.inboxId)).toBe(true);
    const [stored] = await parley!.database.db.select().from(messages).where(eq(messages.role, "assistant"));
    expect(stored?.mode).toBe("contemplating");
  });

  it("contemplating with every agent failing answers in Thinking mode and says so", async () => {
    model.reply("agent-a", { error: { status: 400, message: "bad request" } });
    model.reply("agent-b", { error: { status: 500, message: "down" } });
    model.reply("agent-c", { error: { status: 404, message: "no such model" } });
    model.reply("think-model", { text: "Thinking it over: 42." });
    await start({ CONTEMPLATE_AGENTS: "3" });

    const reply = await ask(104, "/contemplate six times seven?");
    expect(reply).toBe(`${FALLBACK_NOTE}\n\nThinking it over: 42.`);
    expect(model.requestsFor("synth-model")).toHaveLength(0);
    const calls = await parley!.database.db.select().from(modelCalls).orderBy(modelCalls.id);
    const parent = calls.find((c) => c.parentId === null)!;
    expect(parent).toMatchObject({ mode: "contemplating", ok: false });
    expect(parent.error).toContain("all 3 agents failed");
    expect(calls.filter((c) => c.parentId === parent.id).map((c) => [c.purpose, c.model, c.ok]).sort()).toEqual([
      ["agent", "agent-a", false],
      ["agent", "agent-b", false],
      ["agent", "agent-c", false],
      ["answer", "think-model", true],
    ]);
    const [stored] = await parley!.database.db.select().from(messages).where(eq(messages.role, "assistant"));
    expect(stored?.mode).toBe("thinking");
  });

  it("runs a calculator tool call round trip and records it with the model call", async () => {
    model.reply("tool-model", (request) =>
      request.toolResults.length === 0
        ? { toolCalls: [{ name: "calculator", arguments: { expression: "12 * (3 + 4)" } }] }
        : { text: `It is ${JSON.parse(request.toolResults[0]!.output).result}.` },
    );
    await start({ MODELS_INSTANT: "openai-compatible:tool-model" });

    expect(await ask(105, "what is 12 times 7?")).toBe("It is 84.");
    const [first, second] = model.requestsFor("tool-model");
    const offered = (body(first).tools as Array<{ function: { name: string } }>).map((t) => t.function.name).sort();
    expect(offered).toEqual(["calculator", "time"]);
    expect(JSON.parse(second!.toolResults[0]!.output)).toEqual({ expression: "12 * (3 + 4)", result: 84 });
    const calls = await parley!.database.db.select().from(modelCalls);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.ok).toBe(true);
    expect(calls[0]!.tools).toEqual([{ name: "calculator", input: { expression: "12 * (3 + 4)" }, outputChars: expect.any(Number) }]);
    expect(calls[0]!.tools![0]!.outputChars).toBeGreaterThan(0);
  });

  it("routes around a rate-limited provider to the next in the chain, and shows the breaker in modelHealth()", async () => {
    model.reply("busy-model", { error: { status: 429, message: "slow down", retryAfterSeconds: 120 } });
    await start({ MODELS_INSTANT: "openai-compatible:busy-model,ollama:backup-model", CIRCUIT_BREAKER_FAILURES: "2" });

    expect(await ask(106, "first")).toBe("echo: first");
    expect(await ask(106, "second")).toBe("echo: second");
    // A retry-after of two minutes is not waited for: one request each, then the next model.
    expect(model.requestsFor("busy-model")).toHaveLength(2);
    const health = parley!.modelHealth();
    expect(health.find((h) => h.provider === "openai-compatible")).toMatchObject({ state: "open", consecutiveFailures: 2 });
    expect(health.find((h) => h.provider === "ollama")).toMatchObject({ state: "closed", consecutiveFailures: 0 });
    // While open, the provider is skipped without a request.
    expect(await ask(106, "third")).toBe("echo: third");
    expect(model.requestsFor("busy-model")).toHaveLength(2);
    expect(parley!.logs.text()).toContain("circuit breaker for openai-compatible opened");
  });
});
