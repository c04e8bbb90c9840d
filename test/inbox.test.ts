import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { chatKey, userKey } from "../src/core/keys.ts";
import type { ChannelName, InboundMessage } from "../src/core/types.ts";
import { openDatabase, type Database } from "../src/db/client.ts";
import { createInbox, type Inbox } from "../src/inbox/inbox.ts";
import { conversations, inbox as inboxTable, messages } from "../src/db/schema.ts";
import { eq } from "drizzle-orm";
import { captureLogs } from "./support/logs.ts";
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";

function message(chat: string, n: number, channel: ChannelName = "telegram"): InboundMessage {
  return {
    channel,
    platformMessageId: `${chat}:${n}`,
    chat: chatKey(channel, chat),
    user: userKey(channel, chat),
    isGroup: false,
    mentionsBot: false,
    replyToBot: false,
    text: `message ${n}`,
    attachments: [],
    receivedAt: new Date("2026-11-01T10:00:00Z"),
  };
}

describe.each(DATABASE_KINDS)("inbox on %s", (kind) => {
  let testDb: TestDatabase;
  let database: Database;
  let inbox: Inbox;

  beforeEach(async () => {
    testDb = await createTestDatabase(kind);
    database = await openDatabase(testDb.target, captureLogs().log);
    await database.migrate();
    inbox = createInbox({ db: database.db, leaseMs: 300 });
  });
  afterEach(async () => {
    await database.close();
    await testDb.drop();
  });

  it("stores a message once, however often it is delivered", async () => {
    const first = await inbox.accept(message("1", 1));
    const again = await inbox.accept(message("1", 1));
    expect(first.duplicate).toBe(false);
    expect(first.id).toBeTypeOf("number");
    expect(again).toEqual({ id: null, duplicate: true });
    const claimed = await inbox.claim();
    expect(claimed?.message).toEqual(message("1", 1));
    expect(await inbox.claim()).toBeNull();
  });

  it("hands out one chat's messages in order, one at a time, and other chats in parallel", async () => {
    await inbox.accept(message("a", 1));
    await inbox.accept(message("a", 2));
    await inbox.accept(message("b", 1));
    const first = await inbox.claim();
    const second = await inbox.claim();
    expect(first?.message.platformMessageId).toBe("a:1");
    expect(second?.message.platformMessageId).toBe("b:1");
    expect(await inbox.claim()).toBeNull();
    await inbox.complete(first!.id);
    expect((await inbox.claim())?.message.platformMessageId).toBe("a:2");
  });

  it("closes a row and marks its reply delivered in one statement", async () => {
    const { id } = await inbox.accept(message("d", 1));
    const claimed = await inbox.claim();
    const [conversation] = await database.db.insert(conversations).values({ userKey: "telegram:d", chatKey: "telegram:d" }).returning();
    const [reply] = await database.db
      .insert(messages)
      .values({ conversationId: conversation!.id, inboxId: id, role: "assistant", text: "hi", tokens: 1 })
      .returning();
    await inbox.complete(claimed!.id, { messageId: reply!.id, platformIds: ["7", "8"] });
    const [row] = await database.db.select().from(inboxTable).where(eq(inboxTable.id, id!));
    const [stored] = await database.db.select().from(messages).where(eq(messages.id, reply!.id));
    expect(row).toMatchObject({ state: "done", leaseUntil: null, error: null });
    expect(stored?.platformMessageIds).toEqual(["7", "8"]);
    expect(stored?.deliveredAt).toBeInstanceOf(Date);
  });

  it("stores a row already claimed when a worker waits for it and its chat has nothing unfinished", async () => {
    const first = await inbox.accept(message("e", 1), { claim: true });
    expect(first.claimed).toMatchObject({ id: first.id, attempts: 1, message: message("e", 1) });
    expect(first.claimed?.storedAt).toBeInstanceOf(Date);
    // The chat's first message is still being answered: the next one waits its turn, unclaimed.
    const second = await inbox.accept(message("e", 2), { claim: true });
    expect(second).toEqual({ id: expect.any(Number), duplicate: false });
    expect(await inbox.accept(message("e", 2), { claim: true })).toEqual({ id: null, duplicate: true });
    expect(await inbox.claim()).toBeNull();
    await inbox.complete(first.id!);
    expect((await inbox.claim())?.id).toBe(second.id);
  });

  it("claims only one of two messages of a chat stored at the same moment; the other waits", async () => {
    for (let round = 0; round < 5; round++) {
      const chat = `f${round}`;
      const both = await Promise.all([inbox.accept(message(chat, 1), { claim: true }), inbox.accept(message(chat, 2), { claim: true })]);
      expect(both.filter((a) => a.claimed)).toHaveLength(1);
      expect(both.every((a) => !a.duplicate && a.id !== null)).toBe(true);
      const claimed = both.find((a) => a.claimed)!;
      await inbox.complete(claimed.id!);
      expect((await inbox.claim())?.id).toBe(both.find((a) => !a.claimed)!.id);
    }
  });

  it("never gives the same row to two concurrent claims", async () => {
    // A lease long enough that no claim runs out while the 30 claims race, however slow the machine.
    const longLease = createInbox({ db: database.db, leaseMs: 600_000 });
    for (let chat = 0; chat < 20; chat++) await longLease.accept(message(`c${chat}`, 1));
    const claims = await Promise.all(Array.from({ length: 30 }, () => longLease.claim()));
    const ids = claims.filter((c) => c !== null).map((c) => c.id);
    expect(ids).toHaveLength(20);
    expect(new Set(ids).size).toBe(20);
  });

  it("takes a claim over once its lease has run out, and counts the attempt", async () => {
    await inbox.accept(message("1", 1));
    const first = await inbox.claim();
    expect(await inbox.claim()).toBeNull();
    await new Promise((resolve) => setTimeout(resolve, 400));
    const again = await inbox.claim();
    expect(again?.id).toBe(first?.id);
    expect(again?.attempts).toBe(2);
    expect(await inbox.extendLease(again!.id)).toBe(true);
  });

  it("keeps a row back until its retry time, and blocks the chat's later messages meanwhile", async () => {
    await inbox.accept(message("1", 1));
    await inbox.accept(message("1", 2));
    const first = await inbox.claim();
    await inbox.retryLater(first!.id, "model down", 250);
    expect(await inbox.claim()).toBeNull();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await inbox.claim())?.message.platformMessageId).toBe("1:1");
  });

  it("hands out only the channels asked for, oldest first, and leaves the others to a process that can deliver them", async () => {
    // A lease long enough that none runs out during the test, however slow the machine.
    const longLease = createInbox({ db: database.db, leaseMs: 600_000 });
    await longLease.accept(message("w1@c.us", 1, "whatsapp"));
    await longLease.accept(message("t1", 1));
    await longLease.accept(message("w2@c.us", 1, "whatsapp"));
    await longLease.accept(message("w1@c.us", 2, "whatsapp"));
    await longLease.accept(message("web1", 1, "web"));
    // A standby of the WhatsApp session claims Telegram and web rows only, and nothing when it can deliver nowhere.
    expect(await longLease.claim([])).toBeNull();
    const standby = [await longLease.claim(["telegram", "web"]), await longLease.claim(["telegram", "web"])];
    expect(standby.map((item) => item?.message.chat)).toEqual(["telegram:t1", "web:web1"]);
    expect(await longLease.claim(["telegram", "web"])).toBeNull();
    // The leader takes the WhatsApp rows: one chat in order, other chats in parallel.
    const leader = [await longLease.claim(["whatsapp"]), await longLease.claim(["whatsapp"])];
    expect(leader.map((item) => item?.message.platformMessageId)).toEqual(["w1@c.us:1", "w2@c.us:1"]);
    expect(await longLease.claim(["whatsapp", "telegram", "web"])).toBeNull();
    await longLease.complete(leader[0]!.id);
    expect(await longLease.claim(["telegram", "web"])).toBeNull();
    expect((await longLease.claim(["whatsapp"]))?.message.platformMessageId).toBe("w1@c.us:2");
  });

  it("gives a claim whose lease ran out only to a process that asks for its channel", async () => {
    await inbox.accept(message("w1@c.us", 1, "whatsapp"));
    const first = await inbox.claim(["whatsapp"]);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await inbox.claim(["telegram", "web"])).toBeNull();
    const again = await inbox.claim(["whatsapp"]);
    expect(again?.id).toBe(first?.id);
    expect(again?.attempts).toBe(2);
  });

  it("does not hand out finished rows again", async () => {
    await inbox.accept(message("1", 1));
    await inbox.accept(message("2", 1));
    await inbox.accept(message("3", 1));
    const [a, b, c] = [await inbox.claim(), await inbox.claim(), await inbox.claim()];
    await inbox.complete(a!.id);
    await inbox.ignore(b!.id, "not addressed");
    await inbox.fail(c!.id, "gave up");
    expect(await inbox.extendLease(a!.id)).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect(await inbox.claim()).toBeNull();
  });
});
