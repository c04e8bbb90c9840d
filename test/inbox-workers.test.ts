import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { chatKey, userKey } from "../src/core/keys.ts";
import type { InboundMessage } from "../src/core/types.ts";
import { openDatabase, type Database } from "../src/db/client.ts";
import { createInbox, type Inbox, type InboxItem } from "../src/inbox/inbox.ts";
import { startWorkers, type Reservation, type WorkerPool } from "../src/inbox/workers.ts";
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { captureLogs } from "./support/logs.ts";

/**
 * The worker pool against a real inbox: what it claims and when. Polling is set to a minute, so anything handled
 * within the test's few seconds was reached through announcements and claims after work, not the timer.
 */

const message = (chat: string, n: number): InboundMessage => ({
  channel: "telegram",
  platformMessageId: `${chat}:${n}`,
  chat: chatKey("telegram", chat),
  user: userKey("telegram", chat),
  isGroup: false,
  mentionsBot: false,
  replyToBot: false,
  text: `message ${n}`,
  attachments: [],
  receivedAt: new Date(),
});

const until = async (check: () => boolean, timeoutMs = 5_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

describe.each(DATABASE_KINDS)("inbox workers on %s", (kind) => {
  let testDb: TestDatabase;
  let database: Database;
  let inbox: Inbox;
  let stop: AbortController;
  let pool: WorkerPool | undefined;

  beforeEach(async () => {
    testDb = await createTestDatabase(kind);
    database = await openDatabase(testDb.target, captureLogs().log);
    await database.migrate();
    inbox = createInbox({ db: database.db, leaseMs: 30_000 });
    stop = new AbortController();
  });
  afterEach(async () => {
    stop.abort();
    await pool?.done;
    pool = undefined;
    await database.close();
    await testDb.drop();
  });

  /** Starts `concurrency` workers whose handling of a row waits for `release(platformMessageId)`. */
  const start = (concurrency: number, pollMs: number) => {
    const handled: string[] = [];
    const gates = new Map<string, () => void>();
    const started: string[] = [];
    pool = startWorkers({
      inbox,
      concurrency,
      leaseMs: 30_000,
      pollMs,
      log: captureLogs().log,
      signal: stop.signal,
      handle: async (item: InboxItem) => {
        started.push(item.message.platformMessageId);
        await new Promise<void>((resolve) => gates.set(item.message.platformMessageId, resolve));
        handled.push(item.message.platformMessageId);
        await inbox.complete(item.id);
      },
    });
    const release = async (id: string) => {
      await until(() => gates.has(id));
      gates.get(id)!();
    };
    return { handled, started, release, pool };
  };
  const store = async (m: InboundMessage, announce = true) => {
    await inbox.accept(m);
    if (announce) pool!.wake();
  };

  it("takes a row announced while every worker was busy as soon as one is free", async () => {
    const { started, release } = start(1, 60_000);
    await store(message("a", 1));
    await until(() => started.length === 1);
    await store(message("b", 1));
    await release("a:1");
    await until(() => started.includes("b:1"));
    await release("b:1");
  });

  it("answers a chat's next message right after the one it waited behind", async () => {
    const { started, handled, release } = start(2, 60_000);
    await store(message("a", 1));
    await until(() => started.length === 1);
    // The idle worker is woken, finds the row held back behind a:1, and waits again.
    await store(message("a", 2));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(started).toEqual(["a:1"]);
    await release("a:1");
    await until(() => started.includes("a:2"));
    await release("a:2");
    await until(() => handled.length === 2);
    expect(handled).toEqual(["a:1", "a:2"]);
  });

  it("gives a row stored already claimed to the worker set aside for it; a released one claims", async () => {
    const { started, release, pool } = start(1, 60_000);
    let slot: Reservation | undefined;
    await until(() => (slot = pool.reserve("telegram")) !== undefined);
    // The only worker is set aside: no other to reserve.
    expect(pool.reserve("telegram")).toBeUndefined();
    const accepted = await inbox.accept(message("g", 1), { claim: true });
    slot!.give(accepted.claimed!);
    await until(() => started.includes("g:1"));
    await release("g:1");

    await until(() => (slot = pool.reserve("telegram")) !== undefined);
    await inbox.accept(message("h", 1));
    slot!.release();
    await until(() => started.includes("h:1"));
    await release("h:1");
  });

  it("keeps a worker set aside from its poll timer until the row is given", async () => {
    const { started, release, pool } = start(1, 5);
    let slot: Reservation | undefined;
    await until(() => (slot = pool.reserve("telegram")) !== undefined);
    // Several poll intervals pass while the row is being stored.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const accepted = await inbox.accept(message("k", 1), { claim: true });
    slot!.give(accepted.claimed!);
    await until(() => started.includes("k:1"), 2_000);
    await release("k:1");
  });

  it("finds rows nobody announced (another process stored them) by polling", async () => {
    const { started, release } = start(2, 200);
    await store(message("c", 1), false);
    await until(() => started.includes("c:1"));
    await release("c:1");
  });
});
