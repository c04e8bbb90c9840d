import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { inbox, messages, modelCalls } from "../src/db/schema.ts";
import { NO_MODEL_REPLY } from "../src/conversation/service.ts";
import { type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { type FakeTelegram } from "./fakes/telegram-api.ts";
import { DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";
import { closeScene, openScene } from "./support/scene.ts";

const MODEL = "test-model";
const waitFor = <T>(check: () => T | Promise<T>, timeout = 8_000) => vi.waitFor(check, { timeout, interval: 25 });

/** What the model was sent after the system prompt, as [role, text] pairs, per request. */
function prompts(model: FakeOpenAIServer) {
  return model.requestsFor(MODEL).map((r) =>
    ((r.body as { messages: Array<{ role: string; content: unknown }> }).messages ?? []).filter((m) => m.role !== "system").map((m) => [
      m.role,
      typeof m.content === "string" ? m.content : JSON.stringify(m.content),
    ]),
  );
}

describe.each(DATABASE_KINDS)("Telegram end to end on %s", (kind) => {
  let db: TestDatabase;
  let telegram: FakeTelegram;
  let model: FakeOpenAIServer;
  let parley: TestParley | undefined;

  const env = (extra: Record<string, string> = {}) => ({
    TELEGRAM_BOT_TOKEN: telegram.token,
    TELEGRAM_API_ROOT: telegram.url,
    MODELS_INSTANT: `openai-compatible:${MODEL}`,
    OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`,
    OPENAI_COMPATIBLE_API_KEY: "sk-test-compatible-key-0123456789",
    ACCESS_POLICY: "open",
    ...extra,
  });
  const start = async (extra?: Record<string, string>) => (parley = await startTestParley(db, env(extra)));
  const sentTexts = (chatId: number) =>
    telegram.sent
      .filter((c) => c.method === "sendMessage" && c.params.chat_id === chatId && c.errorCode === undefined)
      .map((c) => String(c.params.text));

  beforeEach(async () => {
    ({ db, telegram, model } = await openScene(kind));
  });
  afterEach(async () => {
    await parley?.stop();
    parley = undefined;
    await closeScene({ db, telegram, model });
  });

  it("answers a private message with a streamed reply, drafts first, and records the model call", async () => {
    model.reply(MODEL, { text: "Hello Ada, nice to meet you here.", chunks: 6, chunkDelayMs: 120 });
    await start();
    telegram.pushUpdate(telegram.updates.privateText("hi there", { userId: 11 }));
    await waitFor(() => expect(sentTexts(11)).toEqual(["Hello Ada, nice to meet you here."]));
    const drafts = telegram.sent.filter((c) => c.method === "sendMessageDraft");
    expect(drafts.length).toBeGreaterThan(0);
    expect(String(drafts.at(0)?.params.text).length).toBeLessThan("Hello Ada, nice to meet you here.".length);
    expect(telegram.sent.some((c) => c.method === "sendChatAction" && c.params.action === "typing")).toBe(true);
    const calls = await parley!.database.db.select().from(modelCalls);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ provider: "openai-compatible", model: MODEL, ok: true, purpose: "answer" });
    expect(calls[0]!.firstTokenMs).toBeTypeOf("number");
    expect(calls[0]!.tokensOut).toBeGreaterThan(0);
    await waitFor(async () => {
      const rows = await parley!.database.db.select().from(inbox);
      expect(rows.map((r) => r.state)).toEqual(["done"]);
    });
  });

  it("remembers the conversation, also across a restart", async () => {
    await start();
    telegram.pushUpdate(telegram.updates.privateText("my name is Ada", { userId: 12 }));
    await waitFor(() => expect(sentTexts(12)).toHaveLength(1));
    telegram.pushUpdate(telegram.updates.privateText("what is my name?", { userId: 12 }));
    await waitFor(() => expect(sentTexts(12)).toHaveLength(2));
    expect(prompts(model)[1]).toEqual([
      ["user", "my name is Ada"],
      ["assistant", "echo: my name is Ada"],
      ["user", "what is my name?"],
    ]);

    await parley!.stop();
    await start();
    telegram.pushUpdate(telegram.updates.privateText("and again?", { userId: 12 }));
    await waitFor(() => expect(sentTexts(12)).toHaveLength(3));
    expect(prompts(model)[2]?.map(([, text]) => text)).toEqual([
      "my name is Ada",
      "echo: my name is Ada",
      "what is my name?",
      "echo: what is my name?",
      "and again?",
    ]);
  });

  it("answers a message delivered twice only once", async () => {
    await start();
    const update = telegram.updates.privateText("only once please", { userId: 13 });
    telegram.pushUpdate(update);
    telegram.pushUpdate(update);
    await waitFor(() => expect(sentTexts(13)).toHaveLength(1));
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(sentTexts(13)).toHaveLength(1);
    expect(model.requestsFor(MODEL)).toHaveLength(1);
    expect(await parley!.database.db.select().from(inbox)).toHaveLength(1);
  });

  it("never puts one user's history into another user's prompt", async () => {
    await start();
    telegram.pushUpdate(telegram.updates.privateText("ALPHA-CANARY secret of user one", { userId: 21 }));
    await waitFor(() => expect(sentTexts(21)).toHaveLength(1));
    telegram.pushUpdate(telegram.updates.privateText("BRAVO-CANARY secret of user two", { userId: 22 }));
    await waitFor(() => expect(sentTexts(22)).toHaveLength(1));
    telegram.pushUpdate(telegram.updates.privateText("what did the other user say? telegram:21", { userId: 22 }));
    telegram.pushUpdate(telegram.updates.privateText("tell me everything you know", { userId: 21 }));
    await waitFor(() => expect(sentTexts(21).length + sentTexts(22).length).toBe(4));
    for (const request of model.requestsFor(MODEL)) {
      const text = JSON.stringify(request.body);
      expect(text.includes("ALPHA-CANARY") && text.includes("BRAVO-CANARY")).toBe(false);
    }
    const last22 = model.requestsFor(MODEL).find((r) => r.lastUserText?.startsWith("what did the other"));
    expect(JSON.stringify(last22?.body)).not.toContain("ALPHA-CANARY");
  });

  it("keeps a group conversation apart from the same person's direct messages, and answers in groups only when addressed", async () => {
    await start({ GROUP_ALLOWLIST: "telegram:-100777" });
    telegram.pushUpdate(telegram.updates.privateText("DM-CANARY private note", { userId: 31 }));
    await waitFor(() => expect(sentTexts(31)).toHaveLength(1));
    telegram.pushUpdate(telegram.updates.groupText("chatter the bot should ignore", { userId: 31, chatId: -100777 }));
    telegram.pushUpdate(telegram.updates.groupMention("what do you know about me?", { userId: 31, chatId: -100777 }));
    await waitFor(() => expect(sentTexts(-100777)).toHaveLength(1));
    expect(model.requestsFor(MODEL)).toHaveLength(2);
    const groupPrompt = JSON.stringify(model.requestsFor(MODEL)[1]?.body);
    expect(groupPrompt).not.toContain("DM-CANARY");
    expect(groupPrompt).not.toContain("chatter the bot should ignore");
    const reply = telegram.sent.find((c) => c.method === "sendMessage" && c.params.chat_id === -100777);
    expect(reply?.params.reply_parameters ?? reply?.params.reply_to_message_id).toBeTruthy();
  });

  it("retries when the model fails, and answers once it recovers; the user's message stays stored", async () => {
    model.replyOnce(
      MODEL,
      ...Array.from({ length: 3 }, () => ({ error: { status: 503, message: "overloaded", retryAfterSeconds: 0.01 } })),
    );
    await start();
    telegram.pushUpdate(telegram.updates.privateText("are you there?", { userId: 41 }));
    await waitFor(() => expect(sentTexts(41)).toEqual(["echo: are you there?"]));
    const calls = await parley!.database.db.select().from(modelCalls);
    expect(calls.map((c) => c.ok)).toEqual([false, true]);
    expect(calls[0]!.error).toContain("503");
    const stored = await parley!.database.db.select().from(messages);
    expect(stored.map((m) => m.role)).toEqual(["user", "assistant"]);
  });

  it("tells the user clearly when the model stays down, and keeps their message", async () => {
    model.reply(MODEL, { error: { status: 401, message: "Incorrect API key provided: sk-test-compatible-key-0123456789" } });
    await start();
    telegram.pushUpdate(telegram.updates.privateText("hello?", { userId: 42 }));
    await waitFor(() => expect(sentTexts(42)).toHaveLength(1), 15_000);
    expect(sentTexts(42)[0]).toMatch(/couldn.t get an answer/);
    const stored = await parley!.database.db.select().from(messages);
    expect(stored.map((m) => [m.role, m.text])).toEqual([["user", "hello?"]]);
    await waitFor(async () => {
      const [row] = await parley!.database.db.select().from(inbox);
      expect(row?.state).toBe("failed");
    });
    const calls = await parley!.database.db.select().from(modelCalls);
    for (const call of calls) expect(call.error).not.toContain("sk-test-compatible-key-0123456789");
    expect(parley!.logs.text()).not.toContain("sk-test-compatible-key-0123456789");
    expect(parley!.logs.text()).not.toContain(telegram.token);
  });

  it("answers after a restart when it was stopped in the middle of a reply", async () => {
    model.replyOnce(MODEL, { text: "this answer is never finished", chunks: 10, chunkDelayMs: 400 });
    await start();
    telegram.pushUpdate(telegram.updates.privateText("long question", { userId: 51 }));
    await waitFor(() => expect(model.requestsFor(MODEL)).toHaveLength(1));
    await parley!.stop();
    expect(sentTexts(51)).toEqual([]);
    await start();
    await waitFor(() => expect(sentTexts(51)).toEqual(["echo: long question"]));
    expect(await parley!.database.db.select().from(messages).where(eq(messages.role, "user"))).toHaveLength(1);
  });

  it("delivers a 10,000-character answer in chunks within Telegram's limit", async () => {
    const paragraph = "Parley splits long answers at paragraph boundaries so nothing is cut mid-word. 🙂\n\n";
    const long = paragraph.repeat(Math.ceil(10_000 / paragraph.length)).slice(0, 10_000).trim();
    model.reply(MODEL, { text: long, chunks: 20 });
    await start();
    telegram.pushUpdate(telegram.updates.privateText("write a lot", { userId: 61 }));
    await waitFor(() => expect(sentTexts(61).length).toBeGreaterThanOrEqual(3));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const chunks = sentTexts(61);
    for (const chunk of chunks) expect(chunk.length).toBeLessThanOrEqual(4096);
    expect(chunks.join("").replace(/\s+/g, "")).toBe(long.replace(/\s+/g, ""));
  });

  it("says which variable to set when no model is configured", async () => {
    await start({ MODELS_INSTANT: "" });
    telegram.pushUpdate(telegram.updates.privateText("hello", { userId: 71 }));
    await waitFor(() => expect(sentTexts(71)).toHaveLength(1));
    expect(sentTexts(71)[0]).toContain("MODELS_INSTANT");
    expect(NO_MODEL_REPLY).toContain("MODELS_INSTANT");
  });

  it("refuses a user who is not on the allowlist and tells them their key", async () => {
    await start({ ACCESS_POLICY: "allowlist", ALLOWED_USERS: "telegram:82" });
    telegram.pushUpdate(telegram.updates.privateText("let me in", { userId: 81, firstName: "telegram:82" }));
    telegram.pushUpdate(telegram.updates.privateText("I am allowed", { userId: 82 }));
    await waitFor(() => expect(sentTexts(81)).toHaveLength(1));
    await waitFor(() => expect(sentTexts(82)).toHaveLength(1));
    expect(sentTexts(81)[0]).toContain("telegram:81");
    expect(sentTexts(82)[0]).toBe("echo: I am allowed");
    expect(model.requestsFor(MODEL).map((r) => r.lastUserText)).toEqual(["I am allowed"]);
  });

  it("/reset starts a new conversation and /forget deletes the user's data after confirmation", async () => {
    await start();
    const say = async (text: string, expected: number) => {
      telegram.pushUpdate(telegram.updates.privateText(text, { userId: 91 }));
      await waitFor(() => expect(sentTexts(91)).toHaveLength(expected));
      return sentTexts(91).at(-1)!;
    };
    await say("FIRST-CANARY remember this", 1);
    expect(await say("/reset", 2)).toMatch(/new conversation/i);
    await say("second conversation", 3);
    expect(JSON.stringify(model.lastRequest()?.body)).not.toContain("FIRST-CANARY");
    expect(await say("/forget", 4)).toContain("/forget confirm");
    expect((await parley!.database.db.select().from(messages)).length).toBe(4);
    expect(await say("/forget confirm", 5)).toMatch(/deleted/);
    expect(await parley!.database.db.select().from(messages)).toEqual([]);
    expect(await parley!.database.db.select().from(modelCalls)).toEqual([]);
  });
});
