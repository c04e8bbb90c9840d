import { createHash } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { openDatabase, type Database, type Db } from "../src/db/client.ts";
import { conversations, inbox, media, messages, modelCalls } from "../src/db/schema.ts";
import { applyRetention } from "../src/privacy/retention.ts";
import { captureLogs } from "./support/logs.ts";
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { startLoggedParley } from "./support/logged-parley.ts";

/** HISTORY_RETENTION_DAYS (P4): old messages, conversations, call texts, inbox contents and media go; counts verified. */

const DAY = 24 * 3_600_000;
const NOW = new Date("2026-06-30T12:00:00Z");
const daysAgo = (n: number) => new Date(NOW.getTime() - n * DAY);
const bytes = (n: number) => Buffer.from(`image ${n}`);
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** Two conversations: one entirely older than 30 days, one with an old and a new half (and a summary of the old). */
async function seed(db: Db, now: Date) {
  const at = (n: number) => new Date(now.getTime() - n * DAY);
  const [oldConv, liveConv] = await db
    .insert(conversations)
    .values([
      { userKey: "telegram:1", chatKey: "telegram:1", startedAt: at(90), endedAt: at(80) },
      { userKey: "telegram:2", chatKey: "telegram:2", startedAt: at(60), summary: "OLD-SUMMARY-CANARY", summaryThroughId: 1 },
    ])
    .returning();
  const [row] = await db
    .insert(inbox)
    .values([
      { channel: "telegram", platformMessageId: "o1", chatKey: "telegram:1", userKey: "telegram:1", payload: { text: "OLD-INBOX-CANARY" }, state: "done", createdAt: at(80) },
      { channel: "telegram", platformMessageId: "n1", chatKey: "telegram:2", userKey: "telegram:2", payload: { text: "new words" }, state: "done", createdAt: at(1) },
    ])
    .returning();
  await db.insert(media).values([1, 2, 3].map((n) => ({ sha256: sha(bytes(n)), mimeType: "image/jpeg", bytes: 7, data: bytes(n), createdAt: at(80) })));
  const inserted = await db
    .insert(messages)
    .values([
      { conversationId: oldConv!.id, inboxId: row!.id, role: "user" as const, text: "OLD-CANARY one", tokens: 3, media: [sha(bytes(1))], createdAt: at(80) },
      { conversationId: oldConv!.id, role: "assistant" as const, text: "OLD-CANARY two", tokens: 3, createdAt: at(80) },
      { conversationId: liveConv!.id, role: "user" as const, text: "OLD-CANARY three", tokens: 3, media: [sha(bytes(2))], createdAt: at(45) },
      { conversationId: liveConv!.id, role: "user" as const, text: "recent words", tokens: 3, media: [sha(bytes(3))], createdAt: at(2) },
    ])
    .returning();
  await db.insert(modelCalls).values([
    { userKey: "telegram:1", purpose: "answer", provider: "openai", model: "m", startedAt: at(80), ok: true, tokensIn: 10, tokensOut: 5, reasoning: "OLD-REASONING-CANARY", tools: [{ name: "calculator", input: { expression: "1+1" } }] },
    { userKey: "telegram:2", purpose: "answer", provider: "openai", model: "m", startedAt: at(2), ok: true, reasoning: "recent reasoning" },
  ]);
  return { oldConv: oldConv!.id, liveConv: liveConv!.id, messages: inserted };
}

describe.each(DATABASE_KINDS)("history retention on %s", (kind) => {
  let testDb: TestDatabase;
  let database: Database | undefined;

  beforeEach(async () => {
    testDb = await createTestDatabase(kind);
  });
  afterEach(async () => {
    await database?.close();
    database = undefined;
    await testDb.drop();
  });

  it("deletes what is older than the retention, keeps the rest and the usage numbers", async () => {
    database = await openDatabase(testDb.target, captureLogs().log);
    await database.migrate();
    const { db } = database;
    const seeded = await seed(db, NOW);

    const counts = await applyRetention(db, { days: 30, now: NOW });
    expect(counts).toEqual({ messages: 3, conversations: 1, modelCalls: 1, inbox: 1, media: 2 });
    expect((await db.select().from(messages)).map((m) => m.text)).toEqual(["recent words"]);
    const convs = await db.select().from(conversations);
    expect(convs.map((c) => [c.id, c.summary])).toEqual([[seeded.liveConv, null]]);
    const calls = await db.select().from(modelCalls).orderBy(modelCalls.id);
    expect(calls.map((c) => [c.reasoning, c.tools, c.tokensIn])).toEqual([
      [null, null, 10],
      ["recent reasoning", null, null],
    ]);
    const rows = await db.select().from(inbox).orderBy(inbox.id);
    expect(rows.map((r) => r.payload)).toEqual([{ expired: true }, { text: "new words" }]);
    expect((await db.select({ sha: media.sha256 }).from(media)).map((m) => m.sha)).toEqual([sha(bytes(3))]);
    const everything = JSON.stringify([await db.select().from(messages), convs, calls, rows]);
    expect(everything).not.toMatch(/CANARY/);

    // A second run finds nothing more to do.
    expect(await applyRetention(db, { days: 30, now: NOW })).toEqual({ messages: 0, conversations: 0, modelCalls: 0, inbox: 0, media: 0 });
  });

  it("runs on its own shortly after start when HISTORY_RETENTION_DAYS is set", async () => {
    const parley = await startLoggedParley(testDb, { HISTORY_RETENTION_DAYS: "30" }, { retentionFirstRunMs: 1_500 });
    try {
      await seed(parley.database.db, new Date());
      await vi.waitFor(async () => expect((await parley.database.db.select().from(messages)).map((m) => m.text)).toEqual(["recent words"]), {
        timeout: 10_000,
        interval: 50,
      });
      await vi.waitFor(() => expect(parley.text()).toContain("history past its retention deleted"), { timeout: 5_000 });
    } finally {
      await parley.stop();
    }
  });
});
