import { eq, sql } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createConversationStore, type ConversationStore } from "../src/conversation/store.ts";
import type { InboundMessage } from "../src/core/types.ts";
import { openDatabase, type Database } from "../src/db/client.ts";
import { users } from "../src/db/schema.ts";
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { captureLogs } from "./support/logs.ts";

/** The sender's user row: created once, its name kept current, its last-seen time written only when it has aged. */

const from = (displayName?: string): InboundMessage => ({
  channel: "telegram",
  platformMessageId: "1",
  chat: "telegram:7",
  user: "telegram:7",
  ...(displayName === undefined ? {} : { displayName }),
  isGroup: false,
  mentionsBot: false,
  replyToBot: false,
  text: "hi",
  attachments: [],
  receivedAt: new Date(),
});

describe.each(DATABASE_KINDS)("user rows on %s", (kind) => {
  let testDb: TestDatabase;
  let database: Database;
  let store: ConversationStore;

  beforeEach(async () => {
    testDb = await createTestDatabase(kind);
    database = await openDatabase(testDb.target, captureLogs().log);
    await database.migrate();
    store = createConversationStore(database.db);
  });
  afterEach(async () => {
    await database.close();
    await testDb.drop();
  });

  const row = async () => (await database.db.select().from(users).where(eq(users.key, "telegram:7")))[0]!;
  /** Moves the row's last-seen time back, as if the user had been away. */
  const age = (minutes: number) =>
    database.db.update(users).set({ lastSeenAt: sql`now() - ${minutes} * interval '1 minute'` }).where(eq(users.key, "telegram:7"));

  it("creates the row with its first status, then keeps the status it was given", async () => {
    expect(await store.upsertUser(from("Ada"), "pending")).toMatchObject({ key: "telegram:7", displayName: "Ada", status: "pending" });
    await database.db.update(users).set({ status: "allowed" });
    expect((await store.upsertUser(from("Ada"), "pending")).status).toBe("allowed");
  });

  it("writes last-seen only once it is older than ten minutes, and a new name at once", async () => {
    await store.upsertUser(from("Ada"), "pending");
    await age(5);
    const seen = (await row()).lastSeenAt;
    expect((await store.upsertUser(from("Ada"), "pending")).lastSeenAt).toEqual(seen);
    expect((await store.upsertUser(from(), "pending")).displayName).toBe("Ada");
    expect((await row()).lastSeenAt).toEqual(seen);

    expect((await store.upsertUser(from("Ada L."), "pending")).displayName).toBe("Ada L.");
    expect((await row()).lastSeenAt.getTime()).toBeGreaterThan(seen.getTime());

    await age(11);
    const away = (await row()).lastSeenAt;
    const back = await store.upsertUser(from("Ada L."), "pending");
    expect(back.lastSeenAt.getTime()).toBeGreaterThan(away.getTime());
    expect(back.displayName).toBe("Ada L.");
  });
});
