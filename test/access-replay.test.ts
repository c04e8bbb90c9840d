import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { runCli } from "../scripts/parley.ts";
import { loadConfig } from "../src/config.ts";
import { inbox } from "../src/db/schema.ts";
import { type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { type FakeTelegram } from "./fakes/telegram-api.ts";
import { signInAdmin } from "./support/admin-client.ts";
import { DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";
import { closeScene, openScene } from "./support/scene.ts";

/**
 * Access is decided when a stored message is answered, not only when it arrives: an approval for direct messages
 * never opens a group, and a message that waits in the durable inbox (behind another one of its chat, across a
 * restart, or for a retry of its delivery) is checked again against who may talk now. A redelivered update is
 * stored once and answered once.
 */

const MODEL = "replay-model";
const PASSWORD = "replay-test-password";
const CODE = /approve code ([A-Z2-9]{8}):/;
const waitFor = <T>(check: () => T | Promise<T>, timeout = 15_000) => vi.waitFor(check, { timeout, interval: 25 });

describe.each(DATABASE_KINDS)("access re-checked on %s", (kind) => {
  let db: TestDatabase;
  let telegram: FakeTelegram;
  let model: FakeOpenAIServer;
  let parley: TestParley | undefined;

  const env = (extra: Record<string, string> = {}) => ({
    TELEGRAM_BOT_TOKEN: telegram.token,
    TELEGRAM_API_ROOT: telegram.url,
    MODELS_INSTANT: `openai-compatible:${MODEL}`,
    OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`,
    ADMIN_PASSWORD: PASSWORD,
    ...extra,
  });
  const start = async (extra?: Record<string, string>) => (parley = await startTestParley(db, env(extra)));
  const stop = async () => {
    await parley?.stop();
    parley = undefined;
  };
  const sentTexts = (chatId: number) =>
    telegram.sent
      .filter((c) => c.method === "sendMessage" && c.params.chat_id === chatId && c.errorCode === undefined)
      .map((c) => String(c.params.text));
  const rowsOf = async (chat: string) =>
    (await parley!.database.db.select().from(inbox).where(eq(inbox.chatKey, chat)).orderBy(inbox.id)).map((r) => [r.state, r.error]);
  const asked = () => model.requestsFor(MODEL).map((r) => r.lastUserText);
  const blockWithCli = async (user: string) => {
    const config = loadConfig({ PORT: "0", ...db.env }, "/nonexistent/.env");
    expect(await runCli(["block", user], config, () => {})).toBe(0);
  };

  beforeEach(async () => {
    ({ db, telegram, model } = await openScene(kind));
  });
  afterEach(async () => {
    await stop();
    await closeScene({ db, telegram, model });
  });

  it("an approved pairing lets the person talk in a direct chat, never in a group that is not allowlisted", async () => {
    await start({ GROUP_ALLOWLIST: "telegram:-100600" });
    telegram.pushUpdate(telegram.updates.privateText("may I?", { userId: 311 }));
    await waitFor(() => expect(sentTexts(311)).toHaveLength(1));
    const code = CODE.exec(sentTexts(311)[0]!)?.[1];
    expect(code).toBeDefined();
    const admin = await signInAdmin(parley!.url, PASSWORD);
    expect((await admin.post(`/admin/pairing/${code}/approve`)).status).toBe(303);

    telegram.pushUpdate(telegram.updates.groupMention("answer me here", { userId: 311, chatId: -100601 }));
    await waitFor(async () => expect(await rowsOf("telegram:-100601")).toEqual([["ignored", "group not allowed"]]));
    // The positive signal: their next direct message is answered.
    telegram.pushUpdate(telegram.updates.privateText("and here?", { userId: 311 }));
    await waitFor(() => expect(sentTexts(311).at(-1)).toBe("echo: and here?"));
    expect(sentTexts(-100601)).toEqual([]);
    expect(telegram.sent.filter((c) => c.params.chat_id === -100601)).toEqual([]);
    expect(asked()).toEqual(["and here?"]);
  });

  it("does not answer a stored message of a user blocked before it was processed, across a restart", async () => {
    await start({ ALLOWED_USERS: "telegram:321" });
    model.replyOnce(MODEL, { hang: true });
    telegram.pushUpdate(telegram.updates.privateText("first", { userId: 321 }));
    await waitFor(() => expect(asked()).toEqual(["first"]));
    // Received while allowed, stored to wait behind "first" (one message of a chat at a time).
    const second = telegram.pushUpdate(telegram.updates.privateText("second", { userId: 321 }));
    await waitFor(async () => expect(await rowsOf("telegram:321")).toEqual([["working", null], ["pending", null]]));
    await stop();

    await blockWithCli("telegram:321");
    await start({ ALLOWED_USERS: "telegram:321" });
    // Telegram hands the same update over again (its offset may not have been confirmed): stored once.
    telegram.pushUpdate(second);
    await waitFor(async () =>
      expect(await rowsOf("telegram:321")).toEqual([["ignored", "sender not allowed"], ["ignored", "sender not allowed"]]),
    );
    // The positive signal that the restarted Parley answers: someone else is answered.
    telegram.pushUpdate(telegram.updates.privateText("still running?", { userId: 322 }));
    await waitFor(() => expect(sentTexts(322)).toHaveLength(1));
    expect(await rowsOf("telegram:321")).toHaveLength(2);
    expect(sentTexts(321)).toEqual([]);
    expect(asked()).toEqual(["first"]);
  });

  it("does not answer a stored group message once the group is no longer allowlisted, across a restart", async () => {
    await start({ GROUP_ALLOWLIST: "telegram:-100700" });
    model.replyOnce(MODEL, { hang: true });
    telegram.pushUpdate(telegram.updates.groupMention("first", { userId: 331, chatId: -100700 }));
    await waitFor(() => expect(asked()).toEqual(["first"]));
    telegram.pushUpdate(telegram.updates.groupMention("second", { userId: 332, chatId: -100700 }));
    await waitFor(async () => expect(await rowsOf("telegram:-100700")).toEqual([["working", null], ["pending", null]]));
    await stop();

    await start({ GROUP_ALLOWLIST: "telegram:-100701" });
    await waitFor(async () =>
      expect(await rowsOf("telegram:-100700")).toEqual([["ignored", "group not allowed"], ["ignored", "group not allowed"]]),
    );
    telegram.pushUpdate(telegram.updates.groupMention("the listed group", { userId: 333, chatId: -100701 }));
    await waitFor(() => expect(sentTexts(-100701)).toEqual(["echo: the listed group"]));
    expect(telegram.sent.filter((c) => c.method === "sendMessage" && c.params.chat_id === -100700)).toEqual([]);
    expect(asked()).toEqual(["first", "the listed group"]);
  });

  it("does not deliver a reply written before the user was blocked when its first delivery failed", async () => {
    await start({ ALLOWED_USERS: "telegram:341" });
    model.replyOnce(MODEL, { delayMs: 1_000 });
    telegram.dropNext("sendMessage");
    telegram.pushUpdate(telegram.updates.privateText("question", { userId: 341 }));
    await waitFor(() => expect(asked()).toEqual(["question"]));
    // Blocked while the model writes: the written reply's delivery is cut, and its retry finds the user blocked.
    const admin = await signInAdmin(parley!.url, PASSWORD);
    expect((await admin.post(`/admin/users/${encodeURIComponent("telegram:341")}/status`, { status: "blocked" })).status).toBe(303);
    await waitFor(() => expect(telegram.sent.some((c) => c.method === "sendMessage" && c.errorCode === 0)).toBe(true));
    await waitFor(async () => expect(await rowsOf("telegram:341")).toEqual([["ignored", "sender not allowed"]]));
    expect(sentTexts(341)).toEqual([]);
    expect(asked()).toEqual(["question"]);
  });

  it("answers a redelivered update once, also after a restart", async () => {
    await start({ ALLOWED_USERS: "telegram:351" });
    const hello = telegram.pushUpdate(telegram.updates.privateText("hello", { userId: 351 }));
    await waitFor(() => expect(sentTexts(351)).toEqual(["echo: hello"]));
    await waitFor(async () => expect(await rowsOf("telegram:351")).toEqual([["done", null]]));
    telegram.pushUpdate(hello);
    await stop();
    await start({ ALLOWED_USERS: "telegram:351" });
    telegram.pushUpdate(hello);
    telegram.pushUpdate(telegram.updates.privateText("after", { userId: 351 }));
    await waitFor(() => expect(sentTexts(351)).toEqual(["echo: hello", "echo: after"]));
    await waitFor(async () => expect(await rowsOf("telegram:351")).toEqual([["done", null], ["done", null]]));
    expect(asked()).toEqual(["hello", "after"]);
  });
});
