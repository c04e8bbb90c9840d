import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { conversations, inbox, logs, media, messages, modelCalls, pairingRequests, users } from "../src/db/schema.ts";
import { type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { type FakeTelegram } from "./fakes/telegram-api.ts";
import { DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { solidJpeg } from "./support/images.ts";
import { startLoggedParley, type LoggedParley } from "./support/logged-parley.ts";
import { closeScene, openScene } from "./support/scene.ts";

/**
 * /forget and /export end to end (P3): what a user said, the images they sent and the model calls made for them are
 * gone after /forget (an image someone else also sent stays), no log row holds their words, and the next request
 * to the model carries nothing of the old history. /export sends the stored data back as JSON lines.
 */

const MODEL = "privacy-model";
const waitFor = <T>(check: () => T | Promise<T>, timeout = 10_000) => vi.waitFor(check, { timeout, interval: 25 });

describe.each(DATABASE_KINDS)("forget and export through Telegram on %s", (kind) => {
  let db: TestDatabase;
  let telegram: FakeTelegram;
  let model: FakeOpenAIServer;
  let parley: LoggedParley | undefined;

  const start = async () =>
    (parley = await startLoggedParley(db, {
      TELEGRAM_BOT_TOKEN: telegram.token,
      TELEGRAM_API_ROOT: telegram.url,
      MODELS_INSTANT: `openai-compatible:${MODEL}`,
      MODEL_CAPABILITIES: `openai-compatible:${MODEL}=images`,
      OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`,
      ACCESS_POLICY: "open",
    }));
  /** The texts of a chat's messages as Telegram shows them (a long reply grows by edits in place). */
  const sentTexts = (chatId: number) =>
    telegram.sent
      .filter((c) => c.method === "sendMessage" && c.params.chat_id === chatId && c.errorCode === undefined)
      .map((c, i) => telegram.messageText(chatId, 100_001 + i) ?? String(c.params.text));
  const send = async (userId: number, update: Parameters<FakeTelegram["pushUpdate"]>[0]) => {
    const before = sentTexts(userId).length;
    telegram.pushUpdate(update);
    await waitFor(() => expect(sentTexts(userId).length).toBeGreaterThan(before));
    return sentTexts(userId).slice(before).join("\n");
  };
  const ask = (userId: number, text: string) => send(userId, telegram.updates.privateText(text, { userId }));

  beforeEach(async () => {
    ({ db, telegram, model } = await openScene(kind));
  });
  afterEach(async () => {
    await parley?.stop();
    parley = undefined;
    await closeScene({ db, telegram, model });
  });

  it("/forget deletes the user's messages, images, calls and log traces; the next prompt has no old history", async () => {
    await start();
    const own = telegram.registerFile(await solidJpeg(120, 80));
    const shared = await solidJpeg(90, 60);
    await send(501, telegram.updates.photo(own, "PHOTO-CANARY look at my cat", { userId: 501 }));
    await send(501, telegram.updates.photo(telegram.registerFile(shared), "a shared picture", { userId: 501 }));
    await ask(501, "TEXT-CANARY my secret plan");
    // Someone else sends the same picture: that row must outlive the first user's /forget.
    await send(502, telegram.updates.photo(telegram.registerFile(shared), "same picture", { userId: 502 }));
    const database = parley!.database.db;
    expect(await database.select().from(media)).toHaveLength(2);

    expect(await ask(501, "/forget")).toContain("/forget confirm");
    expect(await ask(501, "/forget confirm")).toMatch(/deleted/);

    const remaining = await database.select({ user: conversations.userKey }).from(conversations);
    expect(remaining.map((r) => r.user)).toEqual(["telegram:502"]);
    expect(await database.select().from(media)).toHaveLength(1);
    expect(await database.select().from(modelCalls).where(eq(modelCalls.userKey, "telegram:501"))).toEqual([]);
    expect(await database.select().from(users).where(eq(users.key, "telegram:501"))).toEqual([]);
    expect(await database.select().from(pairingRequests)).toEqual([]);
    const rows = await database.select().from(inbox).where(eq(inbox.userKey, "telegram:501"));
    for (const row of rows.filter((r) => r.state !== "working")) expect(JSON.stringify(row.payload)).not.toMatch(/CANARY/);

    // Log lines, kept and stored, never carried the words.
    await waitFor(async () => expect((await database.select().from(logs)).length).toBeGreaterThan(5));
    const stored = JSON.stringify(await database.select().from(logs));
    for (const canary of ["PHOTO-CANARY", "TEXT-CANARY"]) {
      expect(parley!.text()).not.toContain(canary);
      expect(stored).not.toContain(canary);
    }

    await ask(501, "what do you remember about me?");
    const last = model.requests.at(-1)!;
    expect(last.lastUserText).toBe("what do you remember about me?");
    expect(last.imageCount).toBe(0);
    expect(JSON.stringify(last.body)).not.toMatch(/CANARY|cat|secret plan|shared picture/);
  });

  it("/export sends the user's data as JSON lines in text messages, theirs only", async () => {
    await start();
    await ask(503, "EXPORT-CANARY remember my name is Ada");
    await ask(504, "OTHER-CANARY from someone else");
    await ask(503, "/think what is 2+2?");
    const reply = await ask(503, "/export");
    expect(reply).toMatch(/^Everything stored about you, as JSON lines \(\d+ lines\):/);
    expect(reply).not.toContain("OTHER-CANARY");
    const lines = reply
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ type: "user", key: "telegram:503", status: "pending" });
    expect(lines.filter((l) => l.type === "message").map((l) => [l.role, l.text])).toEqual([
      ["user", "EXPORT-CANARY remember my name is Ada"],
      ["assistant", "echo: EXPORT-CANARY remember my name is Ada"],
      ["user", "what is 2+2?"],
      ["assistant", "echo: what is 2+2?"],
    ]);
    expect(lines.filter((l) => l.type === "model_call").map((l) => l.mode)).toEqual(["instant", "thinking"]);
    expect(lines.filter((l) => l.type === "conversation")).toHaveLength(1);
    // Nothing of this reached the model.
    expect(model.requests.map((r) => r.lastUserText)).not.toContain("/export");
    expect((await parley!.database.db.select().from(messages)).map((m) => m.text)).not.toContain("/export");
  });
});
