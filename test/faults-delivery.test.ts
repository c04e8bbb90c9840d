import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MODEL_FAILED_REPLY } from "../src/conversation/service.ts";
import { inbox, messages, modelCalls } from "../src/db/schema.ts";
import { type FakeOpenAIServer, type Script } from "./fakes/openai-server.ts";
import { type FakeTelegram } from "./fakes/telegram-api.ts";
import { DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";
import { closeScene, openScene, sceneEnv } from "./support/scene.ts";

/**
 * Faults through the real paths: a model that hangs (F5), a reply that cannot be sent once it is written (F8), and a
 * 429 from Telegram (L4: nothing goes to that bot before retry_after has passed).
 */

const MODEL = "fault-model";
const waitFor = <T>(check: () => T | Promise<T>, timeout = 15_000) => vi.waitFor(check, { timeout, interval: 25 });

describe.each(DATABASE_KINDS)("faults on %s", (kind) => {
  let db: TestDatabase;
  let telegram: FakeTelegram;
  let model: FakeOpenAIServer;
  let parley: TestParley | undefined;

  const start = async (extra: Record<string, string> = {}) =>
    (parley = await startTestParley(db, {
      ...sceneEnv({ telegram, model }, MODEL),
      ...extra,
    }));
  const delivered = (chatId: number) =>
    telegram.sent.filter((c) => c.method === "sendMessage" && c.params.chat_id === chatId && c.errorCode === undefined);
  const sentTexts = (chatId: number) => delivered(chatId).map((c) => String(c.params.text));

  beforeEach(async () => {
    ({ db, telegram, model } = await openScene(kind));
  });
  afterEach(async () => {
    await parley?.stop();
    parley = undefined;
    await closeScene({ db, telegram, model });
  });

  it("times out a hanging model, frees the worker for someone else, and tells the user (F5)", async () => {
    model.reply(MODEL, (request): Script => (request.lastUserText === "hang please" ? { hang: true } : {}));
    await start({ MODEL_TIMEOUT_SECONDS: "0.5", MODEL_RETRIES: "0", WORKER_CONCURRENCY: "1" });
    telegram.pushUpdate(telegram.updates.privateText("hang please", { userId: 701 }));
    await waitFor(() => expect(model.requestsFor(MODEL)).toHaveLength(1));
    telegram.pushUpdate(telegram.updates.privateText("a quick one", { userId: 702 }));

    // The one worker is freed by the timeout: the second user is answered before the first gives up.
    await waitFor(() => expect(sentTexts(702)).toEqual(["echo: a quick one"]));
    expect(sentTexts(701)).toEqual([]);
    await waitFor(() => expect(sentTexts(701)).toEqual([MODEL_FAILED_REPLY]));
    const answeredAt = delivered(702)[0]!.at;
    expect(delivered(701)[0]!.at).toBeGreaterThan(answeredAt);

    const calls = await parley!.database.db.select().from(modelCalls).where(eq(modelCalls.ok, false));
    expect(calls.length).toBeGreaterThanOrEqual(3);
    for (const call of calls) expect(call.error).toMatch(/timed out after 0.5 s/);
    await waitFor(async () => {
      const rows = await parley!.database.db.select().from(inbox).where(eq(inbox.userKey, "telegram:701"));
      expect(rows.map((r) => r.state)).toEqual(["failed"]);
    });
    await model.waitForIdle(5_000);
  });

  it("sends a written reply again when the send fails, without asking the model twice (F8)", async () => {
    await start();
    telegram.dropNext("sendMessage");
    telegram.pushUpdate(telegram.updates.privateText("deliver me", { userId: 703 }));
    await waitFor(() => expect(sentTexts(703)).toEqual(["echo: deliver me"]));
    // The first try was cut (a network error), the second went through.
    expect(telegram.sent.filter((c) => c.method === "sendMessage").map((c) => c.errorCode)).toEqual([0, undefined]);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(sentTexts(703)).toHaveLength(1);
    expect(model.requests).toHaveLength(1);
    const stored = await parley!.database.db.select().from(messages).orderBy(messages.id);
    expect(stored.map((m) => [m.role, m.deliveredAt !== null])).toEqual([
      ["user", false],
      ["assistant", true],
    ]);
    const [row] = await parley!.database.db.select().from(inbox);
    expect(row).toMatchObject({ state: "done", attempts: 2 });
  });

  it("sends nothing to the bot after a 429 until its retry_after has passed (L4)", async () => {
    model.reply(MODEL, (request) => (request.lastUserText === "second" ? { delayMs: 300 } : {}));
    await start();
    telegram.failNext("sendMessage", { error_code: 429, description: "Too Many Requests: retry after 2", retry_after: 2 });
    telegram.pushUpdate(telegram.updates.privateText("first", { userId: 704 }));
    await waitFor(() => expect(telegram.sent.some((c) => c.errorCode === 429)).toBe(true));
    // Another chat's reply is written meanwhile; it must wait too.
    telegram.pushUpdate(telegram.updates.privateText("second", { userId: 705 }));
    await waitFor(() => expect(sentTexts(704)).toEqual(["echo: first"]));
    await waitFor(() => expect(sentTexts(705)).toEqual(["echo: second"]));

    const limited = telegram.sent.find((c) => c.errorCode === 429)!;
    const during = telegram.sent.filter((c) => c.at > limited.at && c.at < limited.at + 2_000);
    expect(during.map((c) => c.method)).toEqual([]);
    expect(telegram.sent.filter((c) => c.method === "sendMessage" && c.params.chat_id === 704)).toHaveLength(2);
    expect(model.requests).toHaveLength(2);
  });
});
