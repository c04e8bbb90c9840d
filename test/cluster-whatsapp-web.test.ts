import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eq } from "drizzle-orm";
import pg from "pg";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DeliveryError } from "../src/core/errors.ts";
import { inbox } from "../src/db/schema.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { BOT_WID, fakeClientFactory, waMessage, type FakeClientFactory, type FakeWhatsAppClient } from "./fakes/whatsapp-web-client.ts";
import { createTestDatabase, type TestDatabase } from "./support/databases.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";

/**
 * The WhatsApp Web session (one browser holding the linked device, needed to receive and to send) runs in one
 * Parley process of a cluster at a time, chosen by a PostgreSQL advisory lock. The other processes stand by: they
 * start no browser and claim no WhatsApp message, and one of them takes the session over within seconds when the
 * leader goes away. Two Parleys run in this test process on one database, each with its own fake whatsapp-web.js
 * client factory and its own model name, so every send and every model call shows which process made it.
 * PostgreSQL only: on PGlite there is one process, always the leader.
 */

const PG = process.env.TEST_DATABASE_URL;
const STANDBY = { state: "running", detail: "standby: another Parley process runs the WhatsApp session" };
const waitFor = <T>(check: () => T | Promise<T>, timeout = 15_000) => vi.waitFor(check, { timeout, interval: 25 });
const person = (n: number) => `49151000000${String(n).padStart(2, "0")}@c.us`;

describe.skipIf(!PG)("WhatsApp Web in a cluster of two processes (PostgreSQL; skipped without TEST_DATABASE_URL)", () => {
  let db: TestDatabase;
  let model: FakeOpenAIServer;
  let dataDir: string;
  const apps: TestParley[] = [];

  beforeEach(async () => {
    db = await createTestDatabase("postgres");
    model = await startFakeOpenAIServer();
    // Both processes share one data dir, as two processes on one host do: the session is where the next leader looks.
    dataDir = await mkdtemp(join(tmpdir(), "parley-wa-cluster-"));
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.stop()));
    await model.close();
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  const start = async (name: "a" | "b", factory: FakeClientFactory) => {
    const app = await startTestParley(
      db,
      {
        PARLEY_DATA_DIR: dataDir,
        WHATSAPP_WEB: "true",
        MODELS_INSTANT: `openai-compatible:model-${name}`,
        OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`,
        ACCESS_POLICY: "open",
      },
      { createWhatsAppClient: factory.create },
    );
    apps.push(app);
    return app;
  };
  const stop = async (app: TestParley) => {
    apps.splice(apps.indexOf(app), 1);
    await app.stop();
  };
  const whatsappRows = (app: TestParley) =>
    app.database.db.select({ state: inbox.state, attempts: inbox.attempts, error: inbox.error }).from(inbox).where(eq(inbox.channel, "whatsapp"));
  const connected = async (app: TestParley, client: FakeWhatsAppClient) => {
    client.connect();
    await waitFor(() => expect(app.adapters.get("whatsapp")?.status()).toEqual({ state: "running", detail: `connected as ${BOT_WID}` }));
  };

  it("runs the session in one process, which answers each message once, and hands it over within seconds", { timeout: 90_000 }, async () => {
    const [factoryA, factoryB] = [fakeClientFactory(), fakeClientFactory()];
    const a = await start("a", factoryA);
    const b = await start("b", factoryB);
    expect(factoryA.clients).toHaveLength(1);
    await connected(a, factoryA.latest());
    expect(factoryB.clients).toHaveLength(0);
    expect(b.adapters.get("whatsapp")?.status()).toEqual(STANDBY);
    // A send that reaches the standby (a hand-over race) is refused retryably: the stored reply is sent again later.
    const refused = await b.adapters.get("whatsapp")!.send(`whatsapp:${person(0)}`, "hi").catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(DeliveryError);
    expect((refused as DeliveryError).retryable).toBe(true);

    // The model keeps the leader's workers busy, so the standby's idle workers would take rows if they could.
    model.reply("model-a", { delayMs: 300 });
    const clientA = factoryA.latest();
    for (let n = 1; n <= 12; n++) clientA.receive(waMessage({ chat: person(n), body: `question ${n}` }));
    await waitFor(() => expect(clientA.sent).toHaveLength(12));
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(clientA.sent.map((s) => [s.chatId, s.text]).sort()).toEqual(
      Array.from({ length: 12 }, (_, i) => [person(i + 1), `echo: question ${i + 1}`]).sort(),
    );
    expect(model.requestsFor("model-a")).toHaveLength(12);
    expect(model.requestsFor("model-b")).toHaveLength(0);
    // Each row was claimed once, by the leader: a claim by the standby would have counted an attempt and failed it.
    expect(await whatsappRows(a)).toEqual(Array.from({ length: 12 }, () => ({ state: "done", attempts: 1, error: null })));
    expect(factoryB.clients).toHaveLength(0);
    expect(b.logs.text()).not.toContain("message handling failed");

    // The leader stops: the standby takes the lock and opens the session from the same data dir.
    await stop(a);
    const stoppedAt = Date.now();
    expect(clientA.destroyCalls).toBe(1);
    await waitFor(() => expect(factoryB.clients).toHaveLength(1));
    expect(Date.now() - stoppedAt).toBeLessThan(8_000);
    const clientB = factoryB.latest();
    expect(clientB.options.sessionDir).toBe(clientA.options.sessionDir);
    await connected(b, clientB);
    expect(b.logs.text()).toContain("this process is now the leader");

    clientB.receive(waMessage({ chat: person(13), body: "still there?" }));
    await waitFor(() => expect(clientB.sent).toEqual([{ chatId: person(13), text: "echo: still there?" }]));
    expect(model.requestsFor("model-b")).toHaveLength(1);
    expect(clientA.sent).toHaveLength(12);
    await waitFor(async () => expect(await whatsappRows(b)).toEqual(Array.from({ length: 13 }, () => ({ state: "done", attempts: 1, error: null }))));
  });

  it("delivers a reply stored when leadership was lost mid-answer from the next leader, without asking the model again", { timeout: 90_000 }, async () => {
    const [factoryA, factoryB] = [fakeClientFactory(), fakeClientFactory()];
    const a = await start("a", factoryA);
    const b = await start("b", factoryB);
    const first = factoryA.latest();
    await connected(a, first);
    model.replyOnce("model-a", { delayMs: 1_500 });
    first.receive(waMessage({ chat: person(1), body: "a slow question" }));
    await waitFor(() => expect(model.activeRequests).toBe(1));

    // The leader's lock connection dies (as when the database restarts or a network partition ends it).
    const admin = new pg.Client({ connectionString: db.env.DATABASE_URL });
    await admin.connect();
    try {
      const ended = await admin.query(
        `select pg_terminate_backend(pid) as ok from pg_locks
         where locktype = 'advisory' and granted and database = (select oid from pg_database where datname = current_database())`,
      );
      expect(ended.rows).toEqual([{ ok: true }]);
    } finally {
      await admin.end();
    }
    await waitFor(() => expect(first.destroyCalls).toBe(1));

    // Whichever process takes the lock next starts a new session. The answer comes meanwhile and is stored, but cannot
    // be sent (from a standby, or before the new session is up): the row goes back to the inbox with a retry time.
    await waitFor(() => expect(factoryA.clients.length + factoryB.clients.length).toBe(2));
    const [next, leader] = factoryB.clients.length === 1 ? [factoryB.latest(), b] : [factoryA.latest(), a];
    expect(next).not.toBe(first);
    await waitFor(async () => {
      const [row] = await whatsappRows(a);
      expect(row?.error).toMatch(/cannot send on whatsapp from this process|WhatsApp is not connected/);
    });
    expect(model.requestsFor("model-a")).toHaveLength(1);
    expect(model.activeRequests).toBe(0);
    await connected(leader, next);
    await waitFor(() => expect(next.sent).toEqual([{ chatId: person(1), text: "echo: a slow question" }]));
    expect(first.sent).toEqual([]);
    expect(model.requestsFor("model-a")).toHaveLength(1);
    expect(model.requestsFor("model-b")).toHaveLength(0);
    await waitFor(async () => expect((await whatsappRows(a))[0]).toMatchObject({ state: "done", error: null }));
    expect((await whatsappRows(a))[0]?.attempts).toBeGreaterThan(1);
  });
});
