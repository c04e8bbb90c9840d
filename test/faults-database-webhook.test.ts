import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { inbox, messages } from "../src/db/schema.ts";
import { hubSignature, startFakeGraph, whatsappWebhook, type FakeGraph } from "./fakes/graph-api.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { startFakeTelegram, type FakeTelegram } from "./fakes/telegram-api.ts";
import { createTestDatabase, type TestDatabase } from "./support/databases.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.ts";

/**
 * F1 for webhooks: PostgreSQL is cut (through a TCP proxy) when a Telegram update and a WhatsApp message arrive.
 * Both webhooks answer 5xx, so the platforms deliver again; once the database is back, the redelivery is stored and
 * answered, exactly once each. (Long polling, which keeps its offset, is covered by e2e-database-outage.test.ts.)
 */

const SECRET = "outage-webhook-secret_0123";
const APP_SECRET = "outage-app-secret-0123";
const waitFor = <T>(check: () => T | Promise<T>, timeout = 15_000) => vi.waitFor(check, { timeout, interval: 50 });

describe.skipIf(!process.env.TEST_DATABASE_URL)("webhooks while PostgreSQL is away (skipped without TEST_DATABASE_URL)", () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let telegram: FakeTelegram;
  let graph: FakeGraph;
  let model: FakeOpenAIServer;
  let parley: TestParley;

  beforeEach(async () => {
    db = await createTestDatabase("postgres");
    const url = new URL(db.env.DATABASE_URL!);
    proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
    url.host = `127.0.0.1:${proxy.port}`;
    [telegram, graph, model] = await Promise.all([startFakeTelegram(), startFakeGraph(), startFakeOpenAIServer()]);
    parley = await startTestParley(
      { ...db, env: { DATABASE_URL: url.toString() } },
      {
        TELEGRAM_BOT_TOKEN: telegram.token,
        TELEGRAM_API_ROOT: telegram.url,
        TELEGRAM_WEBHOOK_URL: "https://parley.example.org/webhooks/telegram",
        TELEGRAM_WEBHOOK_SECRET: SECRET,
        META_APP_SECRET: APP_SECRET,
        META_VERIFY_TOKEN: "outage-verify",
        META_GRAPH_API_ROOT: graph.root,
        WHATSAPP_CLOUD_TOKEN: graph.token,
        WHATSAPP_CLOUD_PHONE_NUMBER_ID: graph.phoneNumberId,
        MODELS_INSTANT: "openai-compatible:outage-model",
        OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`,
        ACCESS_POLICY: "open",
      },
    );
  });
  afterEach(async () => {
    proxy.restore();
    await parley.stop();
    await Promise.all([telegram.close(), graph.close(), model.close(), proxy.close()]);
    await db.drop();
  });

  it("answers 5xx while the database is down, then stores and answers the redelivery exactly once", async () => {
    const update = { ...telegram.updates.privateText("during the outage", { userId: 801 }), update_id: 9001 };
    const whatsapp = JSON.stringify(
      whatsappWebhook.payload([
        whatsappWebhook.change(graph.phoneNumberId, {
          messages: [whatsappWebhook.text("4915100000801", "wamid.OUTAGE", "whatsapp during the outage", String(Math.floor(Date.now() / 1000)))],
        }),
      ]),
    );
    const deliverTelegram = () =>
      fetch(`${parley.url}/webhooks/telegram`, {
        method: "POST",
        headers: { "content-type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET },
        body: JSON.stringify(update),
      });
    const deliverWhatsApp = () =>
      fetch(`${parley.url}/webhooks/whatsapp`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-hub-signature-256": hubSignature(whatsapp, APP_SECRET) },
        body: whatsapp,
      });

    proxy.cut();
    const [t1, w1] = await Promise.all([deliverTelegram(), deliverWhatsApp()]);
    expect(t1.status).toBeGreaterThanOrEqual(500);
    expect(w1.status).toBeGreaterThanOrEqual(500);
    expect(model.requests).toHaveLength(0);

    proxy.restore();
    // The platforms try again (Telegram and Meta both redeliver after a 5xx); twice, to be sure it is stored once.
    await waitFor(async () => expect((await deliverTelegram()).status).toBe(200));
    await waitFor(async () => expect((await deliverWhatsApp()).status).toBe(200));
    expect((await deliverTelegram()).status).toBe(200);
    expect((await deliverWhatsApp()).status).toBe(200);

    await waitFor(() => expect(telegram.sent.filter((c) => c.method === "sendMessage").map((c) => c.params.text)).toEqual(["echo: during the outage"]));
    await waitFor(() =>
      expect(graph.calls("whatsapp").filter((r) => (r.body as { type?: string }).type === "text")).toHaveLength(1),
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(model.requests).toHaveLength(2);
    expect(telegram.sent.filter((c) => c.method === "sendMessage")).toHaveLength(1);
    const rows = await parley.database.db.select().from(inbox);
    expect(rows.map((r) => r.state)).toEqual(["done", "done"]);
    const stored = await parley.database.db.select().from(messages);
    expect(stored.map((m) => m.role).sort()).toEqual(["assistant", "assistant", "user", "user"]);
  });
});
