import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { UserKey } from "../src/core/types.ts";
import { openDatabase, type Database } from "../src/db/client.ts";
import { inbox, modelCalls, users } from "../src/db/schema.ts";
import { startOfDay, startOfMonth, startOfNextDay } from "../src/quotas/calendar.ts";
import { createQuotaGuard, limitsOf, QUOTA_REASONS, type QuotaLimits } from "../src/quotas/guard.ts";
import { usageSince } from "../src/quotas/usage.ts";
import { captureLogs } from "./support/logs.ts";
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";

const DEFAULTS: QuotaLimits = { messagesPerMinute: 3, contemplationsPerHour: 2, tokensPerDay: 1_000, costPerDayUsd: null };
const USER = "telegram:77" as UserKey;
const NOW = new Date("2026-05-20T12:00:00Z");
const ago = (ms: number) => new Date(NOW.getTime() - ms);

describe("calendar windows", () => {
  it.each([
    ["UTC", "2026-05-20T12:00:00Z", "2026-05-20T00:00:00.000Z", "2026-05-21T00:00:00.000Z", "2026-05-01T00:00:00.000Z"],
    ["Europe/Berlin", "2026-05-20T23:30:00Z", "2026-05-20T22:00:00.000Z", "2026-05-21T22:00:00.000Z", "2026-04-30T22:00:00.000Z"],
    // The day the clocks go forward is 23 hours long.
    ["Europe/Berlin", "2026-03-29T12:00:00Z", "2026-03-28T23:00:00.000Z", "2026-03-29T22:00:00.000Z", "2026-02-28T23:00:00.000Z"],
    ["America/New_York", "2026-01-01T03:00:00Z", "2025-12-31T05:00:00.000Z", "2026-01-01T05:00:00.000Z", "2025-12-01T05:00:00.000Z"],
  ])("in %s at %s", (zone, now, day, next, month) => {
    const at = new Date(now);
    expect(startOfDay(at, zone).toISOString()).toBe(day);
    expect(startOfNextDay(at, zone).toISOString()).toBe(next);
    expect(startOfMonth(at, zone).toISOString()).toBe(month);
  });

  it("answers from the remembered day only within it, in either direction", () => {
    const zone = "Europe/Berlin";
    expect(startOfDay(new Date("2026-03-29T12:00:00Z"), zone).toISOString()).toBe("2026-03-28T23:00:00.000Z");
    expect(startOfDay(new Date("2026-03-29T21:59:59Z"), zone).toISOString()).toBe("2026-03-28T23:00:00.000Z");
    expect(startOfDay(new Date("2026-03-29T22:00:00Z"), zone).toISOString()).toBe("2026-03-29T22:00:00.000Z");
    expect(startOfDay(new Date("2026-03-28T22:59:59Z"), zone).toISOString()).toBe("2026-03-27T23:00:00.000Z");
    expect(startOfDay(new Date("2026-03-29T12:00:00Z"), "UTC").toISOString()).toBe("2026-03-29T00:00:00.000Z");
  });

  it("takes a user's own quota over the default; 0 means no limit", () => {
    expect(limitsOf(DEFAULTS, {})).toEqual(DEFAULTS);
    expect(limitsOf(DEFAULTS, { quotaMessagesPerMinute: 20, quotaTokensPerDay: 0, quotaCostPerDayUsd: 0.25, quotaContemplationsPerHour: null })).toEqual({
      messagesPerMinute: 20,
      contemplationsPerHour: 2,
      tokensPerDay: null,
      costPerDayUsd: 0.25,
    });
  });
});

describe.each(DATABASE_KINDS)("quotas counted in the database on %s", (kind) => {
  let testDb: TestDatabase;
  let database: Database;

  beforeEach(async () => {
    testDb = await createTestDatabase(kind);
    database = await openDatabase(testDb.target, captureLogs().log);
    await database.migrate();
    await database.db.insert(users).values({ key: USER, channel: "telegram", status: "allowed" });
  });
  afterEach(async () => {
    await database.close();
    await testDb.drop();
  });

  const guard = () => createQuotaGuard({ db: database.db, defaults: DEFAULTS, timeZone: "UTC", clock: () => NOW });
  const user = async () => (await database.db.select().from(users))[0]!;
  let n = 0;
  const message = async (createdAt: Date, state: "done" | "ignored" | "pending" = "done", error?: string) => {
    const [row] = await database.db
      .insert(inbox)
      .values({ channel: "telegram", platformMessageId: `m${++n}`, chatKey: USER, userKey: USER, payload: {}, state, createdAt, error })
      .returning({ id: inbox.id });
    return row!.id;
  };
  const call = (fields: Partial<typeof modelCalls.$inferInsert>) =>
    database.db
      .insert(modelCalls)
      .values({ purpose: "answer", provider: "openai", model: "m", startedAt: ago(60_000), ok: true, userKey: USER, mode: "instant", ...fields })
      .returning({ id: modelCalls.id })
      .then((rows) => rows[0]!.id);

  it("counts the messages of the last minute that were taken in, in the order they came, and tells once", async () => {
    await message(ago(90_000)); // outside the window
    await message(ago(50_000));
    await message(ago(40_000), "ignored", "group message not addressed to the bot");
    await message(ago(30_000));
    const third = await message(ago(20_000));
    expect((await guard().admit(await user(), third)).refusal).toBeNull();
    const fourth = await message(ago(10_000));
    const { refusal: refused } = await guard().admit(await user(), fourth);
    expect(refused?.reason).toBe(`${QUOTA_REASONS.messagesPerMinute} (told)`);
    // The oldest counted message is 50 s old: the window frees up in 10 s.
    expect(refused?.reply).toBe("You have sent 3 messages within a minute, the most I take. Please wait 10 s, then send your message again.");
    await database.db.update(inbox).set({ state: "ignored", error: refused!.reason }).where(eq(inbox.id, fourth));
    const fifth = await message(ago(5_000));
    expect((await guard().admit(await user(), fifth)).refusal).toEqual({ reason: QUOTA_REASONS.messagesPerMinute });
    // A user's own limit.
    await database.db.update(users).set({ quotaMessagesPerMinute: 0 });
    expect((await guard().admit(await user(), fifth)).refusal).toBeNull();
  });

  it("sums a day's tokens over the calls that reached a provider: a contemplation counts as its N+1 calls, once", async () => {
    const parent = await call({ provider: "parley", model: "contemplation of 3 agents", mode: "contemplating", tokensIn: 600, tokensOut: 300, startedAt: ago(3_600_000) });
    for (const purpose of ["agent", "agent", "agent", "synthesis"] as const) {
      await call({ parentId: parent, purpose, mode: "contemplating", tokensIn: 150, tokensOut: 75, costUsd: 0.01, startedAt: ago(3_600_000) });
    }
    await call({ tokensIn: 50, tokensOut: 25, startedAt: ago(13 * 3_600_000) }); // yesterday
    const today = await usageSince(database.db, USER, startOfDay(NOW, "UTC"));
    expect(today).toMatchObject({ calls: 4, tokens: 900, byMode: { contemplating: { calls: 4, tokens: 900 } } });
    expect(today.costUsd).toBeCloseTo(0.04);
    expect(await (await guard().admit(await user(), 999)).modelCall("instant")).toBeNull();

    await call({ tokensIn: 80, tokensOut: 40 });
    const refused = await (await guard().admit(await user(), 999)).modelCall("thinking");
    expect(refused?.reply).toBe("You have used your daily limit of 1,000 tokens. It resets at 00:00 (UTC); /usage shows where you stand.");
    // Told once a day; the calls of the message being decided on (a retry) are not held against it.
    const row = await message(NOW, "ignored", refused!.reason);
    expect(await (await guard().admit(await user(), 999)).modelCall("thinking")).toEqual({ reason: QUOTA_REASONS.tokensPerDay });
    expect(row).toBeGreaterThan(0);
  });

  it("judges with counts read ahead for the default limits, and reads again for a user's own limit they miss", async () => {
    await message(ago(30_000));
    await message(ago(20_000));
    const third = await message(ago(10_000));
    await call({ tokensIn: 600, tokensOut: 500 });
    const ahead = guard().prefetch(USER, third);
    expect(ahead).toMatchObject({ minute: true, day: true });
    expect((await guard().admit(await user(), third, ahead)).refusal).toBeNull();
    expect(await (await guard().admit(await user(), third, ahead)).modelCall("instant")).toMatchObject({ reason: `${QUOTA_REASONS.tokensPerDay} (told)` });

    // Defaults without a per-minute limit read no such count ahead; a user with their own limit gets it read.
    const noMinute = createQuotaGuard({ db: database.db, defaults: { ...DEFAULTS, messagesPerMinute: null }, timeZone: "UTC", clock: () => NOW });
    const partial = noMinute.prefetch(USER, third);
    expect(partial).toMatchObject({ minute: false, day: true });
    expect((await partial!.counts).messages).toBe(0);
    await database.db.update(users).set({ quotaMessagesPerMinute: 2 });
    expect((await noMinute.admit(await user(), third, partial)).refusal?.reason).toBe(`${QUOTA_REASONS.messagesPerMinute} (told)`);
    // No default limit at all: nothing is read ahead.
    const none = createQuotaGuard({ db: database.db, defaults: { messagesPerMinute: null, contemplationsPerHour: null, tokensPerDay: null, costPerDayUsd: null }, timeZone: "UTC" });
    expect(none.prefetch(USER, third)).toBeUndefined();
  });

  it("limits contemplations an hour, and cost a day when set", async () => {
    await call({ provider: "parley", mode: "contemplating", startedAt: ago(50 * 60_000), inboxId: null });
    await call({ provider: "parley", mode: "contemplating", startedAt: ago(10 * 60_000) });
    const refused = await (await guard().admit(await user(), 999)).modelCall("contemplating");
    expect(refused?.reply).toMatch(/^You have used your 2 contemplations for this hour\. The next one is possible in 10 min/);
    expect(await (await guard().admit(await user(), 999)).modelCall("instant")).toBeNull();

    await database.db.update(users).set({ quotaCostPerDayUsd: 0.05 });
    await call({ tokensIn: 1, tokensOut: 1, costUsd: 0.06 });
    expect((await (await guard().admit(await user(), 999)).modelCall("instant"))?.reply).toContain("daily limit of $0.05 of model use");
  });
});
