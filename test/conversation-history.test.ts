import { eq, sql } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createHistoryCache } from "../src/conversation/history-cache.ts";
import type { ChatKey, UserKey } from "../src/core/types.ts";
import { createConversationStore, type ConversationStore, type Turn } from "../src/conversation/store.ts";
import { openDatabase, type Database, type Db } from "../src/db/client.ts";
import { conversations, messages } from "../src/db/schema.ts";
import { applyRetention } from "../src/privacy/retention.ts";
import { captureLogs } from "./support/logs.ts";
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";

/**
 * The recent turns a store keeps in memory (src/conversation/history-cache.ts): whatever happens to a conversation,
 * a store with the cache answers exactly what a store without it reads from the database.
 */

const ALICE: UserKey = "telegram:1";
const BOB: UserKey = "telegram:2";
const GROUP: ChatKey = "telegram:-100";
const DAY = 24 * 3_600_000;

describe.each(DATABASE_KINDS)("recent turns with the history cache on %s", (kind) => {
  let testDb: TestDatabase;
  let database: Database;
  let db: Db;
  /** Reads the database every time: what every cached answer must equal. */
  let uncached: ConversationStore;
  /** The last id given to a turn slipped in below the others. */
  let slipped = 0;

  beforeEach(async () => {
    testDb = await createTestDatabase(kind);
    database = await openDatabase(testDb.target, captureLogs().log);
    await database.migrate();
    db = database.db;
    uncached = createConversationStore(db, { historyCacheBytes: 0 });
    slipped = 0;
    // Turns get ids from 1001 on, so that a test can slip one in below them (see `slipIn`).
    await db.execute(sql`select setval(pg_get_serial_sequence('messages', 'id'), 1000)`);
  });
  afterEach(async () => {
    await database.close();
    await testDb.drop();
  });

  const add = async (store: ConversationStore, user: UserKey, texts: string[], chat: ChatKey = user) => {
    const conversation = await store.openConversation(user, chat);
    const ids: number[] = [];
    for (const [i, text] of texts.entries()) {
      const row = await store.addTurn({ conversationId: conversation.id, inboxId: null, role: i % 2 ? "assistant" : "user", text, tokens: 3 });
      ids.push(row.id);
    }
    return ids;
  };

  /**
   * The store's answer for the conversation as just read, checked against the database; returns its texts. Calls
   * alternate between the two ways the store answers: recentTurns after openConversation, and both in one query.
   */
  let calls = 0;
  const recent = async (store: ConversationStore, user: UserKey, limit: number, chat: ChatKey = user) => {
    let conversation;
    let got;
    if (++calls % 2 === 0) {
      ({ conversation, recent: got } = await store.openConversationWithTurns(user, chat, limit));
    } else {
      conversation = await store.openConversation(user, chat);
      got = await store.recentTurns(conversation, limit);
    }
    expect(got).toEqual(await uncached.recentTurns(conversation, limit));
    return got.map((turn) => turn.text);
  };

  /**
   * A turn with an id below the others, written behind the stores' backs: Parley never does that (turns come in id
   * order), so a store that still holds the conversation does not see it, and one that reads it afresh does. It shows
   * whether an answer came from the cache.
   */
  const slipIn = async (user: UserKey, text: string) => {
    const conversation = await uncached.openConversation(user, user);
    await db.insert(messages).values({ id: ++slipped, conversationId: conversation.id, role: "user", text, tokens: 3 });
  };

  const epochOf = async (conversationId: number) =>
    (await db.select({ epoch: conversations.historyEpoch }).from(conversations).where(eq(conversations.id, conversationId)))[0]?.epoch;

  it("sees the turns added by this process and by another, and serves the rest from memory", async () => {
    const store = createConversationStore(db);
    const other = createConversationStore(db);
    await add(store, ALICE, ["a1", "a2", "a3"]);
    expect(await recent(store, ALICE, 5)).toEqual(["a3", "a2", "a1"]);
    await add(other, ALICE, ["a4", "a5", "a6", "a7"]);
    expect(await recent(store, ALICE, 5)).toEqual(["a7", "a6", "a5", "a4", "a3"]);
    expect(await recent(other, ALICE, 5)).toEqual(["a7", "a6", "a5", "a4", "a3"]);
    // More new turns than the limit: the new ones replace what was held.
    await add(store, ALICE, ["b1", "b2", "b3", "b4", "b5", "b6"]);
    expect(await recent(store, ALICE, 5)).toEqual(["b6", "b5", "b4", "b3", "b2"]);
    for (let i = 1; i <= 6; i++) {
      await add(i % 2 ? store : other, ALICE, [`c${i}`]);
      expect((await recent(store, ALICE, 5))[0]).toBe(`c${i}`);
      await recent(other, ALICE, 5);
    }

    expect(await recent(store, ALICE, 50)).toHaveLength(19);
    await slipIn(ALICE, "behind the cache");
    expect((await store.recentTurns(await store.openConversation(ALICE, ALICE), 50)).map((t) => t.text)).not.toContain("behind the cache");
    const fresh = createConversationStore(db);
    expect(await recent(fresh, ALICE, 50)).toContain("behind the cache");
  });

  it("opens a conversation with its turns in one query, started when there is none", async () => {
    const store = createConversationStore(db);
    const first = await store.openConversationWithTurns(BOB, GROUP, 5);
    expect(first.recent).toEqual([]);
    expect(first.conversation).toMatchObject({ userKey: BOB, chatKey: GROUP, historyEpoch: 0 });
    await add(store, BOB, ["g1", "g2"], GROUP);
    expect((await store.openConversationWithTurns(BOB, GROUP, 5)).recent.map((t) => t.text)).toEqual(["g2", "g1"]);
    // The next call asks only for newer turns: one slipped in below them stays unseen, as with recentTurns.
    await add(store, BOB, ["g3"], GROUP);
    const conversation = await store.openConversation(BOB, GROUP);
    await db.insert(messages).values({ id: ++slipped, conversationId: conversation.id, role: "user", text: "behind", tokens: 3 });
    const again = await store.openConversationWithTurns(BOB, GROUP, 5);
    expect(again.conversation.id).toBe(conversation.id);
    expect(again.recent.map((t) => t.text)).toEqual(["g3", "g2", "g1"]);
    expect((await uncached.openConversationWithTurns(BOB, GROUP, 5)).recent.map((t) => t.text)).toEqual(["g3", "g2", "g1", "behind"]);
  });

  it("reads afresh once turns were changed or deleted (the epoch)", async () => {
    const store = createConversationStore(db);
    const [first, second] = await add(store, ALICE, ["one", "two", "three"]);
    const { id } = await store.openConversation(ALICE, ALICE);
    await recent(store, ALICE, 10);
    await slipIn(ALICE, "slipped");

    // Delivery marks do not change the history: the epoch stays, the cache is kept.
    await db.update(messages).set({ deliveredAt: new Date(), platformMessageIds: ["9"] }).where(eq(messages.id, first!));
    expect(await epochOf(id)).toBe(0);
    expect((await store.recentTurns(await store.openConversation(ALICE, ALICE), 10)).map((t) => t.text)).toEqual(["three", "two", "one"]);

    await db.update(messages).set({ text: "two, edited" }).where(eq(messages.id, second!));
    expect(await epochOf(id)).toBe(1);
    expect(await recent(store, ALICE, 10)).toEqual(["three", "two, edited", "one", "slipped"]);

    await db.delete(messages).where(eq(messages.id, first!));
    expect(await epochOf(id)).toBe(2);
    expect(await recent(store, ALICE, 10)).toEqual(["three", "two, edited", "slipped"]);
  });

  it("follows the summary forward, and reads afresh should it ever move back", async () => {
    const store = createConversationStore(db);
    const ids = await add(store, ALICE, ["t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8"]);
    const { id } = await store.openConversation(ALICE, ALICE);
    expect(await recent(store, ALICE, 5)).toEqual(["t8", "t7", "t6", "t5", "t4"]);
    await store.saveSummary(id, "the first five", ids[4]!);
    expect(await recent(store, ALICE, 5)).toEqual(["t8", "t7", "t6"]);
    await add(store, ALICE, ["t9"]);
    await store.saveSummary(id, "the first seven", ids[6]!);
    expect(await recent(store, ALICE, 5)).toEqual(["t9", "t8"]);
    const [t10] = await add(store, ALICE, ["t10"]);
    await store.saveSummary(id, "everything", t10!);
    expect(await recent(store, ALICE, 5)).toEqual([]);
    await add(store, ALICE, ["t11"]);
    expect(await recent(store, ALICE, 5)).toEqual(["t11"]);
    await store.saveSummary(id, "less", ids[1]!);
    expect(await recent(store, ALICE, 5)).toEqual(["t11", "t10", "t9", "t8", "t7"]);
  });

  it("drops what retention deleted", async () => {
    const store = createConversationStore(db);
    const { id } = await store.openConversation(ALICE, ALICE);
    const old = new Date(Date.now() - 60 * DAY);
    await db.insert(messages).values(["old 1", "old 2"].map((text) => ({ conversationId: id, role: "user" as const, text, tokens: 3, createdAt: old })));
    await add(store, ALICE, ["new 1", "new 2"]);
    const summarized = (await db.select({ id: messages.id }).from(messages).orderBy(messages.id))[0]!.id;
    await store.saveSummary(id, "old 1 said", summarized);
    expect(await recent(store, ALICE, 10)).toEqual(["new 2", "new 1", "old 2"]);

    expect((await applyRetention(db, { days: 30 })).messages).toBe(2);
    expect(await epochOf(id)).toBe(1);
    expect(await recent(store, ALICE, 10)).toEqual(["new 2", "new 1"]);
    await add(store, ALICE, ["new 3"]);
    expect(await recent(store, ALICE, 10)).toEqual(["new 3", "new 2", "new 1"]);
  });

  it("keeps nothing of a forgotten user", async () => {
    const store = createConversationStore(db);
    await add(store, ALICE, ["secret 1", "secret 2"]);
    await add(store, BOB, ["bob's"]);
    const { id } = await store.openConversation(ALICE, ALICE);
    expect(await recent(store, ALICE, 10)).toEqual(["secret 2", "secret 1"]);
    expect(await recent(store, BOB, 10)).toEqual(["bob's"]);

    await store.forgetUser(ALICE);
    // Parley never reuses a conversation id; one that came back would still show nothing of before.
    await db.insert(conversations).values({ id, userKey: ALICE, chatKey: ALICE });
    await add(store, ALICE, ["hello again"]);
    expect(await recent(store, ALICE, 10)).toEqual(["hello again"]);
    // Bob's turns are still served from memory.
    await slipIn(BOB, "slipped");
    expect((await store.recentTurns(await store.openConversation(BOB, BOB), 10)).map((t) => t.text)).toEqual(["bob's"]);

    // Forgotten by another process: the next conversation is a new one, read afresh.
    const other = createConversationStore(db);
    await other.forgetUser(BOB);
    await add(other, BOB, ["new bob"]);
    expect(await recent(store, BOB, 10)).toEqual(["new bob"]);
  });

  it("evicts the least recently used conversation when over its bound", async () => {
    const long = "x".repeat(2_000);
    // Three conversations of ~4 kB each; room for two.
    const store = createConversationStore(db, { historyCacheBytes: 10_000 });
    await add(store, ALICE, [`alice ${long}`]);
    await add(store, BOB, [`bob ${long}`]);
    await add(store, ALICE, [`carol ${long}`], GROUP);
    await recent(store, ALICE, 10);
    await recent(store, BOB, 10);
    await recent(store, ALICE, 10); // Alice's is now the most recently used: Bob's goes first.
    await recent(store, ALICE, 10, GROUP);
    await slipIn(ALICE, "slipped");
    await slipIn(BOB, "slipped");
    expect((await store.recentTurns(await store.openConversation(ALICE, ALICE), 10)).map((t) => t.text)).toEqual([`alice ${long}`]);
    expect(await recent(store, BOB, 10)).toEqual([`bob ${long}`, "slipped"]);
  });

  it("reads afresh for another limit", async () => {
    const store = createConversationStore(db);
    await add(store, ALICE, ["u1", "u2", "u3", "u4", "u5", "u6"]);
    expect(await recent(store, ALICE, 5)).toEqual(["u6", "u5", "u4", "u3", "u2"]);
    expect(await recent(store, ALICE, 3)).toEqual(["u6", "u5", "u4"]);
    await add(store, ALICE, ["u7"]);
    expect(await recent(store, ALICE, 5)).toEqual(["u7", "u6", "u5", "u4", "u3"]);
    expect(await recent(store, ALICE, 3)).toEqual(["u7", "u6", "u5"]);
  });

  it("never shows one person's turns to another, in a group or alone", async () => {
    const store = createConversationStore(db);
    const own = new Map<string, number[]>();
    for (let round = 0; round < 4; round++) {
      for (const [user, chat] of [[ALICE, GROUP], [BOB, GROUP], [ALICE, ALICE], [BOB, BOB]] as const) {
        const key = `${user} in ${chat}`;
        own.set(key, [...(own.get(key) ?? []), ...(await add(store, user, [`${key} ${round}`], chat))]);
        const conversation = await store.openConversation(user, chat);
        const turns = await store.recentTurns(conversation, 3);
        expect(turns).toEqual(await uncached.recentTurns(conversation, 3));
        expect(turns.map((t) => t.id)).toEqual(own.get(key)!.slice(-3).reverse());
      }
    }
  });

  it("hands out arrays of the caller's own, of turns that cannot be changed", async () => {
    const store = createConversationStore(db);
    await add(store, ALICE, ["first", "second"]);
    const turns = await store.recentTurns(await store.openConversation(ALICE, ALICE), 10);
    turns.pop();
    turns.push(turns[0]!);
    expect(() => (turns[0]!.text = "changed")).toThrow(TypeError);
    expect(() => turns[0]!.media.push("x")).toThrow(TypeError);
    expect(await recent(store, ALICE, 10)).toEqual(["second", "first"]);
  });

  it("raises the epoch of every conversation a deletion touches, a cascade and an emptied table included", async () => {
    const store = createConversationStore(db);
    await add(store, ALICE, ["a"]);
    await add(store, BOB, ["b"]);
    const alice = (await store.openConversation(ALICE, ALICE)).id;
    const bob = (await store.openConversation(BOB, BOB)).id;
    await db.delete(messages);
    expect([await epochOf(alice), await epochOf(bob)]).toEqual([1, 1]);
    await add(store, ALICE, ["a again"]);
    await db.execute(sql`truncate ${messages} cascade`);
    expect([await epochOf(alice), await epochOf(bob)]).toEqual([2, 2]);
    await add(store, ALICE, ["a once more"]);
    await db.delete(conversations).where(eq(conversations.id, alice));
    expect(await db.select().from(messages)).toEqual([]);
    expect(await epochOf(bob)).toBe(2);
  });
});

describe("history cache", () => {
  const turn = (id: number): Turn => ({ id, role: "user", text: `turn ${id}`, tokens: 3, media: [] });
  const conversation = { id: 1, userKey: ALICE, chatKey: ALICE, summaryThroughId: null, historyEpoch: 0 };

  it("reads a conversation unused for 15 minutes afresh", async () => {
    let now = 0;
    const cache = createHistoryCache({ maxBytes: 1_000_000, now: () => now });
    const reads: number[] = [];
    const read = async (afterId: number) => {
      reads.push(afterId);
      return afterId < 2 ? [turn(2), turn(1)] : [];
    };
    await cache.recent(conversation, 10, read);
    now += 14 * 60_000;
    expect(cache.hint(ALICE, ALICE, 10)).toEqual({ conversationId: 1, epoch: 0, newestId: 2 });
    expect(cache.hint(ALICE, ALICE, 20)).toBeUndefined();
    await cache.recent(conversation, 10, read);
    now += 15 * 60_000;
    expect(cache.hint(ALICE, ALICE, 10)).toBeUndefined();
    expect(await cache.recent(conversation, 10, read)).toEqual([turn(2), turn(1)]);
    expect(reads).toEqual([0, 2, 0]);
  });
});
