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

  it("keeps at most three codes pending per channel and tells the others to try later, once an hour", async () => {
    const { db } = database;
    for (let i = 1; i <= MAX_PENDING_PER_CHANNEL; i++) expect((await requestPairing(db, sender(i), T0)).type).toBe("code");
    expect(await requestPairing(db, sender(9), at(1))).toEqual({ type: "full", notify: true });
    expect(await requestPairing(db, sender(9), at(30))).toEqual({ type: "full", notify: false });
    // Another channel has its own three.
    expect((await requestPairing(db, sender(9, "messenger"), at(2))).type).toBe("code");
    // An approval frees a place.
    const [oldest] = await listPendingPairings(db, at(31));
    expect(await approvePairing(db, oldest!.code, at(31))).toEqual({ user: "telegram:1", displayName: "Person 1" });
    expect(await requestPairing(db, sender(9), at(32))).toMatchObject({ type: "code", notify: true });
    // Codes that expired free their places too.
    expect(await requestPairing(db, sender(10), at(61))).toMatchObject({ type: "code", notify: true });
    expect((await listPendingPairings(db, at(61))).map((p) => p.user)).toEqual(["messenger:9", "telegram:9", "telegram:10"]);
  });

  it("never issues more than the cap when many strangers write at the same moment", async () => {
    const outcomes = await Promise.all(Array.from({ length: 12 }, (_, i) => requestPairing(database.db, sender(100 + i), T0)));
    expect(outcomes.filter((o) => o.type === "code")).toHaveLength(MAX_PENDING_PER_CHANNEL);
    expect(outcomes.filter((o) => o.type === "full")).toHaveLength(12 - MAX_PENDING_PER_CHANNEL);
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
