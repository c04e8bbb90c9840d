import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { conversations, inbox, logs, media, messages, modelCalls, pairingRequests, users } from "../src/db/schema.ts";
import { type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { type FakeTelegram, type UploadedFile } from "./fakes/telegram-api.ts";
import { exportFile, exportReply, NOTHING_STORED } from "../src/privacy/export.ts";
import { DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { solidJpeg } from "./support/images.ts";
import { startLoggedParley, type LoggedParley } from "./support/logged-parley.ts";
import { closeScene, openScene, sceneEnv } from "./support/scene.ts";

/**
 * /forget and /export end to end (P3): what a user said, the images they sent and the model calls made for them are
 * gone after /forget (an image someone else also sent stays), no log row holds their words, and the next request
 * to the model carries nothing of the old history. /export sends the stored data back as a JSON-lines file (as text
 * where the platform refuses the file).
 */

const MODEL = "privacy-model";
const waitFor = <T>(check: () => T | Promise<T>, timeout = 10_000) => vi.waitFor(check, { timeout, interval: 25 });

describe.each(DATABASE_KINDS)("forget and export through Telegram on %s", (kind) => {
  let db: TestDatabase;
  let telegram: FakeTelegram;
  let model: FakeOpenAIServer;
  let parley: LoggedParley | undefined;

  const start = async (extra: Record<string, string> = {}) =>
    (parley = await startLoggedParley(db, {
      ...sceneEnv({ telegram, model }, MODEL),
      MODEL_CAPABILITIES: `openai-compatible:${MODEL}=images`,
      ...extra,
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

  /** The documents the bot sent to a chat: their name, caption and JSON lines. */
  const documents = (chatId: number) =>
    telegram.sent
      .filter((c) => c.method === "sendDocument" && c.params.chat_id === chatId && c.errorCode === undefined)
      .map((c) => {
        const upload = c.params.document as UploadedFile;
        const text = new TextDecoder().decode(upload.bytes);
        return { name: upload.name, caption: String(c.params.caption ?? ""), text, lines: text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Record<string, unknown>) };
      });

  it("/export sends the user's data as a JSON-lines file, theirs only", async () => {
    await start();
    await ask(503, "EXPORT-CANARY remember my name is Ada `with backticks`");
    await ask(504, "OTHER-CANARY from someone else");
    await ask(503, "/think what is 2+2?");
    telegram.pushUpdate(telegram.updates.privateText("/export", { userId: 503 }));
    await waitFor(() => expect(documents(503)).toHaveLength(1));
    const [file] = documents(503);
    expect(file!.name).toMatch(/^parley-export-\d{4}-\d{2}-\d{2}\.jsonl$/);
    expect(file!.caption).toMatch(/^Everything stored about you, as JSON lines \(\d+ lines\)\. \/forget deletes all of it\.$/);
    expect(file!.text).not.toContain("OTHER-CANARY");
    const { lines } = file!;
    expect(lines[0]).toMatchObject({ type: "user", key: "telegram:503", status: "pending" });
    // In a file the text is exactly what was said (no escaping for a code block).
    expect(lines.filter((l) => l.type === "message").map((l) => [l.role, l.text])).toEqual([
      ["user", "EXPORT-CANARY remember my name is Ada `with backticks`"],
      ["assistant", "echo: EXPORT-CANARY remember my name is Ada `with backticks`"],
      ["user", "what is 2+2?"],
      ["assistant", "echo: what is 2+2?"],
    ]);
    expect(lines.filter((l) => l.type === "model_call").map((l) => l.mode)).toEqual(["instant", "thinking"]);
    expect(lines.filter((l) => l.type === "conversation")).toHaveLength(1);
    // No text reply besides the file, and nothing of this reached the model.
    expect(sentTexts(503).join("\n")).not.toContain("Everything stored about you");
    expect(model.requests.map((r) => r.lastUserText)).not.toContain("/export");
    expect((await parley!.database.db.select().from(messages)).map((m) => m.text)).not.toContain("/export");
  });

  it("/export falls back to text when Telegram refuses the file for good, and says so in a group", async () => {
    await start({ GROUP_POLICY: "open" });
    await ask(505, "FALLBACK-CANARY hello");
    telegram.failNext("sendDocument", { error_code: 400, description: "Bad Request: file is too big" });
    const reply = await ask(505, "/export");
    expect(reply).toMatch(/^Everything stored about you, as JSON lines \(\d+ lines\):/);
    expect(reply).toContain("FALLBACK-CANARY hello");
    expect(documents(505)).toHaveLength(0);
    expect(parley!.text()).toContain("the platform refused the file; sending it as text");

    const inGroup = await send(-100_505, telegram.updates.groupMention("/export", { userId: 505, chatId: -100_505 }));
    expect(inGroup).toBe("Send /export in a direct chat with me: your data is not for the group.");
  });
});

describe("export forms", () => {
  const lines = [JSON.stringify({ type: "user", key: "telegram:1" }), JSON.stringify({ type: "message", text: "a `b` c" })];

  it("cuts the file at its byte limit and says so in the caption", () => {
    const whole = exportFile(lines, new Date("2026-11-22T10:00:00Z"))!;
    expect(whole.name).toBe("parley-export-2026-11-22.jsonl");
    expect(new TextDecoder().decode(whole.bytes)).toBe(`${lines[0]}\n${lines[1]}\n`);
    const cut = exportFile(lines, new Date(), lines[0]!.length + 1)!;
    expect(new TextDecoder().decode(cut.bytes)).toBe(`${lines[0]}\n`);
    expect(cut.caption).toMatch(/^Everything stored about you: the first 1 line of 2 \(JSON lines\); the rest did not fit\./);
    expect(exportFile([], new Date())).toBeUndefined();
  });

  it("escapes backticks in the text form so no line can close its code block", () => {
    const text = exportReply(lines);
    expect(text).toContain("a \\u0060b\\u0060 c");
    expect(text.split("```")).toHaveLength(3);
    expect(exportReply([])).toBe(NOTHING_STORED);
  });
});
