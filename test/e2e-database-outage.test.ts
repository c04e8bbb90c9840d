import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { inbox, messages } from "../src/db/schema.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { startFakeTelegram, type FakeTelegram } from "./fakes/telegram-api.ts";
import { createTestDatabase, type TestDatabase } from "./support/databases.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.ts";

const waitFor = <T>(check: () => T | Promise<T>, timeout = 15_000) => vi.waitFor(check, { timeout, interval: 50 });

// PostgreSQL behind a proxy that the test cuts: the database "goes away" while Parley runs.
describe.skipIf(!process.env.TEST_DATABASE_URL)("PostgreSQL going away while Parley runs", () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let telegram: FakeTelegram;
  let model: FakeOpenAIServer;
  let parley: TestParley;

  beforeEach(async () => {
    db = await createTestDatabase("postgres");
    const url = new URL(db.env.DATABASE_URL!);
    proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
    url.host = `127.0.0.1:${proxy.port}`;
    telegram = await startFakeTelegram();
    model = await startFakeOpenAIServer();
    parley = await startTestParley(
      { ...db, env: { DATABASE_URL: url.toString() } },
      {
        TELEGRAM_BOT_TOKEN: telegram.token,
        TELEGRAM_API_ROOT: telegram.url,
        MODELS_INSTANT: "openai-compatible:outage-model",
        OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`,
        ACCESS_POLICY: "open",
      },
    );
  });
  afterEach(async () => {
    proxy.restore();
    await parley.stop();
    await Promise.all([telegram.close(), model.close(), proxy.close()]);
    await db.drop();
  });

  const replies = () => telegram.sent.filter((c) => c.method === "sendMessage").map((c) => c.params.text);

  it("keeps a message at Telegram while the database is down, then answers it exactly once", async () => {
    proxy.cut();
    const update = telegram.pushUpdate(telegram.updates.privateText("sent during the outage", { userId: 7 }));
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    // Not stored, so not confirmed: Telegram still holds it.
    expect(telegram.pending().some((u) => u.update_id === update.update_id)).toBe(true);
    expect(replies()).toEqual([]);
    const ready = await fetch(`${parley.url}/readyz`);
    expect(ready.status).toBe(503);

    proxy.restore();
    await waitFor(() => expect(replies()).toEqual(["echo: sent during the outage"]));
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(replies()).toHaveLength(1);
    expect(model.requests).toHaveLength(1);
    const rows = await parley.database.db.select().from(inbox);
    expect(rows.map((r) => r.state)).toEqual(["done"]);
    expect((await parley.database.db.select().from(messages)).map((m) => m.role)).toEqual(["user", "assistant"]);
    expect(parley.logs.text()).not.toContain(telegram.token);
  });

  it("finishes a message whose processing was cut off by the outage", async () => {
    model.reply("outage-model", { text: "a slow answer", chunks: 4, chunkDelayMs: 300 });
    telegram.pushUpdate(telegram.updates.privateText("answer me slowly", { userId: 8 }));
    await waitFor(() => expect(model.requests).toHaveLength(1));
    proxy.cut();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    proxy.restore();
    await waitFor(() => expect(replies()).toContain("a slow answer"));
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(replies().filter((t) => t === "a slow answer")).toHaveLength(1);
    expect((await parley.database.db.select().from(messages)).map((m) => m.role).sort()).toEqual(["assistant", "user"]);
  });
});
