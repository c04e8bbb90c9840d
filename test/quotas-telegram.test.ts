import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { inbox, modelCalls, users } from "../src/db/schema.ts";
import { type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { type FakeTelegram } from "./fakes/telegram-api.ts";
import { signInAdmin } from "./support/admin-client.ts";
import { DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";
import { closeScene, openScene, sceneEnv } from "./support/scene.ts";

/**
 * Quotas and fairness end to end: a burst from one user (L7), the daily token limit with a contemplation counted as
 * its calls, /usage by mode, a user's own quota set on the admin page, and one model call at a time per user
 * across a direct chat and a group.
 */

const MODEL = "quota-model";
const PASSWORD = "quota-test-password";
const waitFor = <T>(check: () => T | Promise<T>, timeout = 15_000) => vi.waitFor(check, { timeout, interval: 25 });
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(DATABASE_KINDS)("quotas through Telegram on %s", (kind) => {
  let db: TestDatabase;
  let telegram: FakeTelegram;
  let model: FakeOpenAIServer;
  let parley: TestParley | undefined;

  const start = async (extra: Record<string, string> = {}) =>
    (parley = await startTestParley(db, {
      ...sceneEnv({ telegram, model }, MODEL),
      ADMIN_PASSWORD: PASSWORD,
      ...extra,
    }));
  const sentTexts = (chatId: number) =>
    telegram.sent
      .filter((c) => c.method === "sendMessage" && c.params.chat_id === chatId && c.errorCode === undefined)
      .map((c, i) => telegram.messageText(chatId, 100_001 + i) ?? String(c.params.text));
  const ask = async (userId: number, text: string) => {
    const before = sentTexts(userId).length;
    telegram.pushUpdate(telegram.updates.privateText(text, { userId }));
    await waitFor(() => expect(sentTexts(userId).length).toBeGreaterThan(before));
    return sentTexts(userId).at(-1)!;
  };
  const settled = () =>
    waitFor(async () => {
      const rows = await parley!.database.db.select().from(inbox);
      expect(rows.filter((r) => r.state === "pending" || r.state === "working")).toEqual([]);
    });

  beforeEach(async () => {
    ({ db, telegram, model } = await openScene(kind));
  });
  afterEach(async () => {
    await parley?.stop();
    parley = undefined;
    await closeScene({ db, telegram, model });
  });

  it("answers a burst only up to the messages-a-minute limit, says so once, and keeps other users going (L7)", async () => {
    model.reply(MODEL, { text: "a considered answer", delayMs: 50 });
    await start({ QUOTA_MESSAGES_PER_MINUTE: "4" });
    for (let i = 1; i <= 12; i++) telegram.pushUpdate(telegram.updates.privateText(`think very deeply ${i}`, { userId: 401 }));
    telegram.pushUpdate(telegram.updates.privateText("a normal question", { userId: 402 }));
    await waitFor(() => expect(sentTexts(402)).toEqual(["a considered answer"]));
    await settled();
    const mine = model.requests.filter((r) => r.lastUserText?.startsWith("think very deeply")).map((r) => r.lastUserText);
    expect(mine).toEqual(["think very deeply 1", "think very deeply 2", "think very deeply 3", "think very deeply 4"]);
    const replies = sentTexts(401);
    expect(replies.filter((t) => t === "a considered answer")).toHaveLength(4);
    const told = replies.filter((t) => t !== "a considered answer");
    expect(told).toHaveLength(1);
    expect(told[0]).toMatch(/^You have sent 4 messages within a minute, the most I take\. Please wait \d+ s/);
    const rows = await parley!.database.db.select().from(inbox).where(eq(inbox.userKey, "telegram:401"));
    expect(rows.map((r) => r.error ?? r.state)).toEqual([
      ...Array(4).fill("done"),
      "over quota: messages per minute (told)",
      ...Array(7).fill("over quota: messages per minute"),
    ]);
  });

  it("stops at the daily token limit (a contemplation counts as all its calls) and /usage shows it by mode", async () => {
    const usage = { usage: { promptTokens: 60, completionTokens: 30 } };
    model.reply(MODEL, usage);
    await start({ QUOTA_TOKENS_PER_DAY: "400", CONTEMPLATE_AGENTS: "2" });
    expect(await ask(403, "one")).toBe("echo: one");
    expect(await ask(403, "/contemplate two")).toBeTruthy();
    // 90 tokens, then 3 calls of 90 (2 agents and the synthesis): 360, below 400.
    const calls = await parley!.database.db.select().from(modelCalls);
    expect(calls.filter((c) => c.provider !== "parley")).toHaveLength(4);
    expect(await ask(403, "three")).toBe("echo: three");
    const requests = model.requests.length;
    expect(await ask(403, "four")).toBe("You have used your daily limit of 400 tokens. It resets at 00:00 (UTC); /usage shows where you stand.");
    expect(model.requests.length).toBe(requests);

    const text = await ask(403, "/usage");
    expect(text).toContain("Today: 450 tokens");
    expect(text).toContain("5 model calls (contemplating 3, instant 2)");
    expect(text).toContain("400 tokens a day (450 used today)");
    expect(text).toContain("10 contemplations an hour");

    // The admin page shows the same, by mode, and a user's own quota lifts the limit.
    const admin = await signInAdmin(parley!.url, PASSWORD);
    const page = await admin.get(`/admin/users/${encodeURIComponent("telegram:403")}`);
    expect(page.text).toMatch(/<dt>Calls in contemplating<\/dt><dd>3 · 270 tokens/);
    expect(page.text).toMatch(/<dt>Tokens in \/ out<\/dt><dd>300 \/ 150<\/dd>/);
    expect(page.text).toContain('placeholder="default: 400"');
    const saved = await admin.post("/admin/users/telegram%3A403/quotas", { quotaTokensPerDay: "0", quotaMessagesPerMinute: "", quotaContemplationsPerHour: "1", quotaCostPerDayUsd: "" });
    expect(saved.status).toBe(303);
    expect((await admin.post("/admin/users/telegram%3A403/quotas", { quotaTokensPerDay: "-5" })).status).toBe(400);
    const [row] = await parley!.database.db.select().from(users).where(eq(users.key, "telegram:403"));
    expect(row).toMatchObject({ quotaTokensPerDay: 0, quotaMessagesPerMinute: null, quotaContemplationsPerHour: 1 });
    expect(await ask(403, "five")).toBe("echo: five");
    expect(await ask(403, "/contemplate six")).toMatch(/^You have used your 1 contemplations for this hour/);
  });

  it("runs one model call at a time for a person writing in a direct chat and a group at once", async () => {
    model.reply(MODEL, { text: "slow answer", delayMs: 700 });
    await start({ GROUP_POLICY: "open" });
    let most = 0;
    const watch = setInterval(() => (most = Math.max(most, model.activeRequests)), 10);
    try {
      telegram.pushUpdate(telegram.updates.privateText("in private", { userId: 404 }));
      telegram.pushUpdate(telegram.updates.groupMention("in the group", { userId: 404, chatId: -100404 }));
      await waitFor(() => expect(model.requests).toHaveLength(2));
      await settled();
      expect(most).toBe(1);
      // Two different people are answered at the same time.
      most = 0;
      telegram.pushUpdate(telegram.updates.privateText("me", { userId: 405 }));
      telegram.pushUpdate(telegram.updates.privateText("me too", { userId: 406 }));
      await waitFor(() => expect(model.requests).toHaveLength(4));
      await settled();
      await pause(50);
      expect(most).toBe(2);
    } finally {
      clearInterval(watch);
    }
  });
});
