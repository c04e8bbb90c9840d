import { eq } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import { openDatabase, type Database } from "../src/db/client.ts";
import { logs } from "../src/db/schema.ts";
import { createLogSink, parseLine } from "../src/observability/log-sink.ts";
import { createLogger } from "../src/observability/logger.ts";
import { captureLogs } from "./support/logs.ts";
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";

/** The log sink behind the admin page: stdout tee, the live tail's ring, batched rows in the logs table. */

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("parseLine", () => {
  it.each([
    [10, "trace"],
    [20, "debug"],
    [30, "info"],
    [40, "warn"],
    [50, "error"],
    [60, "fatal"],
    [35, "info"],
    [99, "fatal"],
  ])("maps pino level %d to %s", (level, name) => {
    expect(parseLine(JSON.stringify({ level, time: 0, msg: "m" }), 1).level).toBe(name);
  });

  it("takes source from `source`, else `channel`, msg as message and the rest as data", () => {
    const a = parseLine(JSON.stringify({ level: 30, time: 1_700_000_000_000, source: "inbox", msg: "claimed", inboxId: 7 }), 1);
    expect(a).toEqual({ seq: 1, time: new Date(1_700_000_000_000), level: "info", source: "inbox", message: "claimed", data: { inboxId: 7 } });
    const b = parseLine(JSON.stringify({ level: 40, time: 0, channel: "web", msg: "slow" }), 2);
    expect(b).toMatchObject({ source: "web", message: "slow", data: { channel: "web" } });
    const c = parseLine(JSON.stringify({ level: 30, time: 0, msg: "plain" }), 3);
    expect(c).toMatchObject({ source: null, data: null });
  });

  it("keeps what PostgreSQL would refuse or what is too large out of the row", () => {
    const nul = parseLine(JSON.stringify({ level: 30, time: 0, msg: "a\u0000b", x: "c\u0000d" }), 1);
    expect(nul.message).toBe("a\uFFFDb");
    expect(nul.data).toEqual({ x: "c\uFFFDd" });
    const huge = parseLine(JSON.stringify({ level: 30, time: 0, msg: "m".repeat(10_000), blob: "x".repeat(50_000) }), 2);
    expect(huge.message).toHaveLength(4_000);
    expect(huge.data).toMatchObject({ truncated: true });
    expect(parseLine("not json at all\n", 3)).toMatchObject({ level: "info", message: "not json at all", data: null });
  });
});

describe("log sink without a database", () => {
  it("tees every line, keeps a bounded ring for the live tail and notifies subscribers", () => {
    const out: string[] = [];
    const sink = createLogSink({ tee: (line) => out.push(line), warn: () => undefined, recentCapacity: 3 });
    const log = createLogger({ level: "info", secrets: ["hunter2-secret"], write: sink.write });
    const seen: string[] = [];
    const unsubscribe = sink.subscribe((entry) => seen.push(entry.message));
    for (let i = 1; i <= 5; i++) log.child({ source: "t" }).info(`line ${i} hunter2-secret`);
    unsubscribe();
    log.info("after unsubscribe");
    expect(out).toHaveLength(6);
    expect(out.join("")).not.toContain("hunter2-secret");
    expect(seen).toEqual([1, 2, 3, 4, 5].map((i) => `line ${i} [redacted]`));
    expect(sink.recent().map((e) => e.message)).toEqual(["line 4 [redacted]", "line 5 [redacted]", "after unsubscribe"]);
    expect(sink.recent().map((e) => e.seq)).toEqual([4, 5, 6]);
  });

  it("never throws into the logger, even when stdout or a subscriber does", () => {
    const sink = createLogSink({
      tee: () => {
        throw new Error("EPIPE");
      },
      warn: () => undefined,
    });
    sink.subscribe(() => {
      throw new Error("subscriber broke");
    });
    const log = createLogger({ level: "info", secrets: [], write: sink.write });
    expect(() => log.info("still fine")).not.toThrow();
    expect(sink.recent().at(-1)?.message).toBe("still fine");
  });
});

describe("log sink when the database is down", () => {
  let database: Database | undefined;
  afterEach(async () => {
    await database?.close().catch(() => undefined);
  });

  it("drops the oldest rows past its bound, counts them and says so once on stderr", async () => {
    // A PostgreSQL that is not there: nothing listens on port 1.
    database = await openDatabase({ kind: "postgres", url: "postgres://parley@127.0.0.1:1/none" }, captureLogs().log);
    const warnings: string[] = [];
    const sink = createLogSink({ tee: () => undefined, warn: (text) => warnings.push(text), maxPending: 5, flushMs: 10 });
    const log = createLogger({ level: "info", secrets: [], write: sink.write });
    sink.attach(database.db, { retentionDays: 14, retentionEveryMs: 3_600_000 });
    const started = performance.now();
    for (let i = 0; i < 20; i++) log.info(`line ${i}`);
    expect(performance.now() - started).toBeLessThan(200); // writing never waits for the database
    expect(sink.dropped).toBe(15);
    await until("a failed flush", () => warnings.length > 0);
    for (let i = 0; i < 20; i++) log.info(`more ${i}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(sink.dropped).toBe(35);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^log sink: .*not being stored in the logs table/);
    await sink.detach();
  });
});

describe.each(DATABASE_KINDS)("log sink on %s", (kind) => {
  let testDb: TestDatabase;
  let database: Database;
  afterEach(async () => {
    await database?.close();
    await testDb?.drop();
  });

  it("stores lines written before and after attach, in batches, and flushes on detach", async () => {
    testDb = await createTestDatabase(kind);
    database = await openDatabase(testDb.target, captureLogs().log);
    await database.migrate();
    const sink = createLogSink({ tee: () => undefined, warn: () => undefined, flushMs: 50, batchSize: 3 });
    const log = createLogger({ level: "debug", secrets: ["sk-should-not-appear-123"], write: sink.write });
    log.info("before attach");
    sink.attach(database.db, { retentionDays: 14 });
    for (let i = 0; i < 7; i++) log.child({ source: "batch" }).debug({ i, key: "sk-should-not-appear-123" }, `row ${i}`);
    log.child({ channel: "telegram" }).error({ err: new Error("boom") }, "send failed");
    await until("eight rows", async () => (await database.db.select().from(logs)).length >= 9);
    const rows = await database.db.select().from(logs).orderBy(logs.id);
    expect(rows.map((r) => r.message)).toEqual(["before attach", ...[0, 1, 2, 3, 4, 5, 6].map((i) => `row ${i}`), "send failed"]);
    expect(rows[1]).toMatchObject({ level: "debug", source: "batch", data: { i: 0, key: "[redacted]" } });
    expect(rows[8]).toMatchObject({ level: "error", source: "telegram" });
    expect((rows[8]!.data as { err: { message: string } }).err.message).toBe("boom");
    expect(JSON.stringify(rows)).not.toContain("sk-should-not-appear-123");

    log.warn("last words");
    await sink.detach();
    expect(await database.db.select().from(logs).where(eq(logs.message, "last words"))).toHaveLength(1);
    log.warn("after detach");
    expect(sink.recent().at(-1)?.message).toBe("after detach");
  });
});
