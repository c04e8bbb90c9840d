import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  approvePairing,
  CODE_TTL_MS,
  listPendingPairings,
  MAX_PENDING_PER_CHANNEL,
  noteRefusal,
  requestPairing,
  setUserAccess,
  type PairingSender,
} from "../src/access/pairing.ts";
import type { UserKey } from "../src/core/types.ts";
import { openDatabase, type Database } from "../src/db/client.ts";
import { pairingRequests, users } from "../src/db/schema.ts";
import { captureLogs } from "./support/logs.ts";
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";

const T0 = new Date("2026-03-01T10:00:00Z");
const at = (minutes: number) => new Date(T0.getTime() + minutes * 60_000);
const sender = (id: number, channel: PairingSender["channel"] = "telegram"): PairingSender => ({
  user: `${channel}:${id}` as UserKey,
  channel,
  displayName: `Person ${id}`,
});

describe.each(DATABASE_KINDS)("pairing on %s", (kind) => {
  let testDb: TestDatabase;
  let database: Database;

  beforeEach(async () => {
    testDb = await createTestDatabase(kind);
    database = await openDatabase(testDb.target, captureLogs().log);
    await database.migrate();
  });
  afterEach(async () => {
    await database.close();
    await testDb.drop();
  });

  it("gives an unknown sender a code, tells them at most once an hour, and a new code once it expires", async () => {
    const { db } = database;
    const first = await requestPairing(db, sender(5), T0);
    expect(first).toMatchObject({ type: "code", notify: true, expiresAt: at(60) });
    const code = first.type === "code" ? first.code : "";
    expect(await requestPairing(db, sender(5), at(10))).toEqual({ type: "code", code, expiresAt: at(60), notify: false });
    expect(await requestPairing(db, sender(5), at(59))).toMatchObject({ type: "code", code, notify: false });
    const renewed = await requestPairing(db, sender(5), at(61));
    expect(renewed).toMatchObject({ type: "code", notify: true });
    expect(renewed.type === "code" && renewed.code).not.toBe(code);
    expect((await listPendingPairings(db, at(61))).map((p) => p.user)).toEqual(["telegram:5"]);
  });

  it("keeps codes for the 20 most recent requests per channel: a new stranger expires the oldest, never gets 'full'", async () => {
    const { db } = database;
    expect(MAX_PENDING_PER_CHANNEL).toBe(20);
    const codes = new Map<number, string>();
    for (let i = 1; i <= 20; i++) {
      const outcome = await requestPairing(db, sender(i), at(i / 10));
      expect(outcome).toMatchObject({ type: "code", notify: true });
      codes.set(i, outcome.type === "code" ? outcome.code : "");
    }
    // The 21st gets a code; the oldest request (sender 1) is expired in its place, so its code approves no one.
    expect(await requestPairing(db, sender(21), at(3))).toMatchObject({ type: "code", notify: true });
    const pending = await listPendingPairings(db, at(3));
    expect(pending).toHaveLength(20);
    expect(pending.map((p) => p.user)).not.toContain("telegram:1");
    expect(pending.at(-1)?.user).toBe("telegram:21");
    expect(await approvePairing(db, codes.get(1)!, at(4))).toBeUndefined();
    // Another channel has its own 20: nothing of Telegram's is expired for it.
    expect(await requestPairing(db, sender(1, "messenger"), at(5))).toMatchObject({ type: "code", notify: true });
    expect(await listPendingPairings(db, at(5))).toHaveLength(21);
    // An approval still works for a code that was kept.
    expect(await approvePairing(db, codes.get(2)!, at(6))).toEqual({ user: "telegram:2", displayName: "Person 2" });
  });

  it("lets no sender churn others out faster than one code an hour, and tells them at most once an hour", async () => {
    const { db } = database;
    for (let i = 1; i <= 20; i++) await requestPairing(db, sender(i), at(i / 10));
    // Asking again while a code is pending gives the same code and expires no one.
    const first = await requestPairing(db, sender(20), at(10));
    const again = await requestPairing(db, sender(20), at(11));
    expect(again).toEqual({ ...first, notify: false });
    expect((await listPendingPairings(db, at(11))).map((p) => p.user)).toContain("telegram:1");
    // Sender 1's code is expired early for sender 21. Sender 1 asking again within the hour of that code gets no new
    // one (which would expire someone else's) and is not told again; nothing of anyone else's is expired meanwhile.
    await requestPairing(db, sender(21), at(12));
    expect(await requestPairing(db, sender(1), at(13))).toEqual({ type: "replaced", retryAt: at(60.1) });
    expect(await requestPairing(db, sender(1), at(59))).toEqual({ type: "replaced", retryAt: at(60.1) });
    expect((await listPendingPairings(db, at(59))).map((p) => p.user)).toContain("telegram:2");
    // Once that hour is over it is a request like any other: a new code, told.
    expect(await requestPairing(db, sender(1), at(61))).toMatchObject({ type: "code", notify: true });
  });

  it("keeps the 20 most recent when many strangers write at the same moment, and gives each a code", async () => {
    const outcomes = await Promise.all(Array.from({ length: 30 }, (_, i) => requestPairing(database.db, sender(100 + i), T0)));
    expect(outcomes.filter((o) => o.type === "code")).toHaveLength(30);
    expect(await listPendingPairings(database.db, T0)).toHaveLength(MAX_PENDING_PER_CHANNEL);
  });

  it("approves by code only while it is valid, keyed to the user key", async () => {
    const { db } = database;
    await db.insert(users).values({ key: "telegram:5", channel: "telegram", displayName: "telegram:82", status: "pending" });
    const outcome = await requestPairing(db, sender(5), T0);
    const code = outcome.type === "code" ? outcome.code : "";
    expect(await approvePairing(db, code, at(60 + 1))).toBeUndefined();
    const again = await requestPairing(db, sender(5), at(61));
    const fresh = again.type === "code" ? again.code : "";
    expect(await approvePairing(db, fresh, at(62))).toMatchObject({ user: "telegram:5" });
    expect(await approvePairing(db, fresh, at(63))).toBeUndefined();
    const [row] = await db.select().from(users).where(eq(users.key, "telegram:5"));
    expect(row?.status).toBe("allowed");
    expect(await db.select().from(pairingRequests)).toEqual([]);
    expect(CODE_TTL_MS).toBe(3_600_000);
  });

  it("tells a refused sender under the allowlist policy once an hour", async () => {
    const { db } = database;
    expect(await noteRefusal(db, sender(7), T0)).toBe(true);
    expect(await noteRefusal(db, sender(7), at(30))).toBe(false);
    expect(await noteRefusal(db, sender(7), at(61))).toBe(true);
    expect(await listPendingPairings(db, at(61))).toEqual([]);
  });

  it("allows or blocks by key, also someone who has not written yet, and ends their request", async () => {
    const { db } = database;
    await requestPairing(db, sender(5), T0);
    await setUserAccess(db, "telegram:5", "blocked");
    await setUserAccess(db, "whatsapp-cloud:4915112345678", "allowed");
    const rows = await db.select().from(users).orderBy(users.key);
    expect(rows.map((r) => [r.key, r.channel, r.status])).toEqual([
      ["telegram:5", "telegram", "blocked"],
      ["whatsapp-cloud:4915112345678", "whatsapp-cloud", "allowed"],
    ]);
    expect(await listPendingPairings(db, at(1))).toEqual([]);
  });
});
