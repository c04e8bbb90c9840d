import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { inbox, modelCalls } from "../src/db/schema.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { startFakeTelegram, type FakeTelegram } from "./fakes/telegram-api.ts";
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";

const SECRET = "webhook-secret_0123456789";
const waitFor = <T>(check: () => T | Promise<T>) => vi.waitFor(check, { timeout: 8_000, interval: 25 });

describe.each(DATABASE_KINDS)("Telegram webhook mode through Parley's HTTP server on %s", (kind) => {
  let db: TestDatabase;
  let telegram: FakeTelegram;
  let model: FakeOpenAIServer;
  let parley: TestParley;
  let updateId = 500;

  beforeEach(async () => {
    db = await createTestDatabase(kind);
    telegram = await startFakeTelegram();
    model = await startFakeOpenAIServer();
    parley = await startTestParley(db, {
      TELEGRAM_BOT_TOKEN: telegram.token,
      TELEGRAM_API_ROOT: telegram.url,
      TELEGRAM_WEBHOOK_URL: "https://parley.example.org/webhooks/telegram",
      TELEGRAM_WEBHOOK_SECRET: SECRET,
      MODELS_INSTANT: "openai-compatible:hook-model",
      OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`,
      ACCESS_POLICY: "open",
    });
  });
  afterEach(async () => {
    await parley.stop();
    await Promise.all([telegram.close(), model.close()]);
    await db.drop();
  });

  const post = (body: unknown, headers: Record<string, string>) =>
    fetch(`${parley.url}/webhooks/telegram`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
  const update = (text: string, userId: number) => ({ ...telegram.updates.privateText(text, { userId }), update_id: ++updateId });

  it("registers the webhook with its secret at start-up", () => {
    expect(telegram.webhook()).toEqual({ url: "https://parley.example.org/webhooks/telegram", secret_token: SECRET });
  });

  it("stores and answers an update that carries the secret", async () => {
    const response = await post(update("hello via webhook", 5), { "X-Telegram-Bot-Api-Secret-Token": SECRET });
    expect(response.status).toBe(200);
    // Acknowledged once stored: the row exists before the model has answered.
    expect((await parley.database.db.select().from(inbox)).map((r) => r.platformMessageId)).toHaveLength(1);
    await waitFor(() =>
      expect(telegram.sent.filter((c) => c.method === "sendMessage").map((c) => c.params.text)).toEqual(["echo: hello via webhook"]),
    );
  });

  it.each([
    ["missing", {}],
    ["wrong", { "X-Telegram-Bot-Api-Secret-Token": "not-the-secret" }],
    ["differently cased", { "X-Telegram-Bot-Api-Secret-Token": SECRET.toUpperCase() }],
  ])("rejects an update whose secret is %s, storing nothing", async (_name, headers) => {
    const response = await post(update("forged", 6), headers);
    expect(response.status).toBe(401);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await parley.database.db.select().from(inbox)).toEqual([]);
    expect(await parley.database.db.select().from(modelCalls)).toEqual([]);
    expect(model.requests).toHaveLength(0);
  });
});
