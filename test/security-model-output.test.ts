import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { inbox, messages } from "../src/db/schema.ts";
import { type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { type FakeTelegram } from "./fakes/telegram-api.ts";
import { DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";
import { closeScene, openScene } from "./support/scene.ts";

/**
 * What a model answers is input too: a provider (or a prompt-injected model) can send a NUL or a lone surrogate,
 * which PostgreSQL refuses to store. The reply is cleaned as the inbox cleans what people send, before it is stored
 * or sent, so the person gets it and it stays in their history.
 */
const MODEL = "test-model";
const waitFor = <T>(check: () => T | Promise<T>) => vi.waitFor(check, { timeout: 8_000, interval: 25 });

describe.each(DATABASE_KINDS)("a model's reply with characters the database refuses (%s)", (kind) => {
  let db: TestDatabase;
  let telegram: FakeTelegram;
  let model: FakeOpenAIServer;
  let parley: TestParley | undefined;

  beforeEach(async () => {
    ({ db, telegram, model } = await openScene(kind));
  });
  afterEach(async () => {
    await parley?.stop();
    parley = undefined;
    await closeScene({ db, telegram, model });
  });

  it("is sent and stored cleaned, and the message is done", async () => {
    model.reply(MODEL, { text: "Hello\u0000 Ada \ud800 and\u0007 bye", chunks: 4, chunkDelayMs: 400 });
    parley = await startTestParley(db, {
      TELEGRAM_BOT_TOKEN: telegram.token,
      TELEGRAM_API_ROOT: telegram.url,
      MODELS_INSTANT: `openai-compatible:${MODEL}`,
      OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`,
      OPENAI_COMPATIBLE_API_KEY: "sk-test-compatible-key-0123456789",
      ACCESS_POLICY: "open",
    });
    telegram.pushUpdate(telegram.updates.privateText("hi", { userId: 31 }));
    await waitFor(async () => {
      const rows = await parley!.database.db.select().from(inbox);
      expect(rows.map((r) => r.state)).toEqual(["done"]);
    });
    const sent = telegram.sent.filter((c) => c.method === "sendMessage" && c.params.chat_id === 31 && c.errorCode === undefined);
    expect(sent.map((c) => String(c.params.text))).toEqual(["Hello Ada \uFFFD and bye"]);
    // Drafts and edits on the way there too: nothing the platform would refuse or show as a box.
    const shown = telegram.sent.filter((c) => typeof c.params.text === "string").map((c) => String(c.params.text));
    expect(telegram.sent.some((c) => c.method === "sendMessageDraft")).toBe(true);
    for (const text of shown) expect(text).not.toMatch(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
    const stored = await parley.database.db.select().from(messages).where(eq(messages.role, "assistant"));
    expect(stored.map((m) => m.text)).toEqual(["Hello Ada \uFFFD and bye"]);
  });
});
