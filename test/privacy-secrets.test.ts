import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { conversations, inbox, logs, users } from "../src/db/schema.ts";
import { deliverWebhook, messengerWebhook, startFakeGraph, whatsappWebhook, type FakeGraph } from "./fakes/graph-api.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { startFakeTelegram, type FakeTelegram } from "./fakes/telegram-api.ts";
import { signInAdmin } from "./support/admin-client.ts";
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { solidJpeg } from "./support/images.ts";
import { startLoggedParley, type LoggedParley } from "./support/logged-parley.ts";

/**
 * P1 and P6: with known secrets configured, errors are driven through every channel (Telegram's getFile and
 * sendMessage failing with the token in the error, a model answering 401 with its key in the message, the Graph API
 * refusing with the token in its message). None of the secret values, nor anything shaped like a credential, may
 * appear in the captured log lines, the logs table, any admin page, or any request that reached a model.
 */

const SECRETS = {
  OPENAI_COMPATIBLE_API_KEY: "sk-compat-canary-7f3a9b2c4d5e6f70",
  OPENAI_API_KEY: "sk-openai-canary-0a1b2c3d4e5f6a7b",
  ANTHROPIC_API_KEY: "sk-ant-canary-9e8d7c6b5a4f3e2d",
  META_APP_SECRET: "meta-app-secret-canary-3c4d5e6f",
  META_VERIFY_TOKEN: "verify-token-canary-1a2b3c",
  ADMIN_PASSWORD: "admin-password-canary-42",
  METRICS_TOKEN: "metrics-token-canary-0123456789",
  META_API_KEY: "meta-llama-key-canary-55aa66bb",
};
const waitFor = <T>(check: () => T | Promise<T>, timeout = 15_000) => vi.waitFor(check, { timeout, interval: 50 });

describe.each(DATABASE_KINDS)("no secret in logs, pages or model requests on %s", (kind) => {
  let db: TestDatabase;
  let telegram: FakeTelegram;
  let graph: FakeGraph;
  let model: FakeOpenAIServer;
  let parley: LoggedParley | undefined;

  beforeEach(async () => {
    db = await createTestDatabase(kind);
    [telegram, graph, model] = await Promise.all([startFakeTelegram(), startFakeGraph(), startFakeOpenAIServer()]);
  });
  afterEach(async () => {
    await parley?.stop();
    parley = undefined;
    await Promise.all([telegram.close(), graph.close(), model.close()]);
    await db.drop();
  });

  it("keeps every configured secret out of logs, the logs table, the admin pages and the model's requests", async () => {
    const secrets = [...Object.values(SECRETS), telegram.token, graph.token];
    // The first model answers 401 quoting the key, as OpenAI does; the chain moves on to the second.
    model.reply("leaky-model", { error: { status: 401, message: `Incorrect API key provided: ${SECRETS.OPENAI_COMPATIBLE_API_KEY}.` } });
    parley = await startLoggedParley(db, {
      ...SECRETS,
      TELEGRAM_BOT_TOKEN: telegram.token,
      TELEGRAM_API_ROOT: telegram.url,
      META_GRAPH_API_ROOT: graph.root,
      WHATSAPP_CLOUD_TOKEN: graph.token,
      WHATSAPP_CLOUD_PHONE_NUMBER_ID: graph.phoneNumberId,
      MESSENGER_PAGE_TOKEN: graph.token,
      MODELS_INSTANT: "openai-compatible:leaky-model,meta:good-model",
      MODEL_CAPABILITIES: "meta:good-model=images;openai-compatible:leaky-model=images",
      OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`,
      META_BASE_URL: `${model.url}/v1`,
      ACCESS_POLICY: "open",
      SYSTEM_PROMPT: "You are a test assistant.",
    });

    // Telegram: a getFile failure that quotes a file URL with the token, and a send refused with the token in it.
    const photo = telegram.registerFile(await solidJpeg(40, 30));
    telegram.failNext("getFile", { error_code: 400, description: `Bad Request: see https://api.telegram.org/file/bot${telegram.token}/photos/x.jpg` });
    telegram.pushUpdate(telegram.updates.photo(photo, "what is this?", { userId: 601 }));
    telegram.failNext("sendMessage", { error_code: 403, description: `Forbidden: bot${telegram.token} was blocked by the user` });
    telegram.pushUpdate(telegram.updates.privateText("hello", { userId: 602 }));

    // WhatsApp Cloud and Messenger: the Graph API refuses the send, quoting the token.
    const graphError = { status: 401, error: { message: `Error validating access token: ${graph.token} has expired`, code: 190 } };
    graph.failNext(/POST .*\/messages$/, graphError, 10);
    const post = async (path: string, payload: unknown) => {
      const res = await deliverWebhook(`${parley!.url}${path}`, payload, SECRETS.META_APP_SECRET);
      expect(res.status).toBe(200);
    };
    await post("/webhooks/whatsapp", whatsappWebhook.payload([
      whatsappWebhook.change(graph.phoneNumberId, { messages: [whatsappWebhook.text("4915100000001", "wamid.S1", "hi from whatsapp", String(Math.floor(Date.now() / 1000)))] }),
    ]));
    await post("/webhooks/messenger", messengerWebhook.payload([messengerWebhook.text("7000000001", "m_s1", "hi from messenger", Date.now())]));
    // A verify handshake with a wrong token, and a webhook without a signature.
    expect((await fetch(`${parley.url}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1`)).status).toBe(403);

    // Wait until every message has ended one way or another.
    await waitFor(async () => {
      const rows = await parley!.database.db.select().from(inbox);
      expect(rows).toHaveLength(4);
      expect(rows.filter((r) => r.state === "pending" || r.state === "working")).toEqual([]);
    }, 30_000);
    expect(model.requestsFor("leaky-model").length).toBeGreaterThan(0);
    await waitFor(async () => expect((await parley!.database.db.select().from(logs)).length).toBeGreaterThan(10));

    // Every admin page, signed in.
    const admin = await signInAdmin(parley.url, SECRETS.ADMIN_PASSWORD);
    const pages: string[] = [];
    const paths = ["/admin/", "/admin/api/overview", "/admin/conversations", "/admin/conversations?error=1", "/admin/users", "/admin/logs", "/admin/logs?level=warn"];
    for (const c of await parley.database.db.select({ id: conversations.id }).from(conversations)) paths.push(`/admin/conversations/${c.id}`);
    for (const u of await parley.database.db.select({ key: users.key }).from(users)) paths.push(`/admin/users/${encodeURIComponent(u.key)}`);
    for (const path of paths) {
      const page = await admin.get(path);
      expect(page.status, path).toBe(200);
      pages.push(page.text);
    }
    expect(pages.join("")).toContain("HTTP 401");

    const places = {
      "log lines": parley.text(),
      "logs table": JSON.stringify(await parley.database.db.select().from(logs)),
      "inbox errors": JSON.stringify((await parley.database.db.select().from(inbox)).map((r) => r.error)),
      "admin pages": pages.join("\n"),
      "model requests": JSON.stringify(model.requests.map((r) => ({ body: r.body, headers: r.headers }))),
    };
    // The failures did happen (and were logged, scrubbed).
    for (const said of ["attachment not used", "Forbidden", "was rejected by the Graph API", "HTTP 401"]) expect(places["log lines"]).toContain(said);
    expect(telegram.sent.filter((c) => c.method === "sendMessage" && c.errorCode === undefined).length).toBeGreaterThan(0);
    for (const [where, text] of Object.entries(places)) {
      for (const secret of secrets) expect(text.includes(secret), `${where} contain ${secret}`).toBe(false);
      expect(text, where).not.toMatch(/api\.telegram\.org\/bot\d/);
      expect(text, where).not.toMatch(/\/file\/bot\d/);
      expect(text, where).not.toMatch(/\d{6,}:[A-Za-z0-9_-]{30,}/);
      expect(text, where).not.toMatch(/EAA[A-Za-z0-9]{20,}/);
      expect(text, where).not.toMatch(/sk-[A-Za-z0-9_-]{8,}/);
      expect(text, where).not.toMatch(/authorization:\s*bearer/i);
    }
    // P6: the model saw each conversation alone, and no one else's identifiers.
    for (const request of model.requests) {
      const body = JSON.stringify(request.body);
      expect([body.includes("hi from whatsapp"), body.includes("hi from messenger"), body.includes("hello")].filter(Boolean).length).toBeLessThanOrEqual(1);
      expect(body).not.toMatch(/4915100000001|7000000001|telegram:60\d/);
    }
  });
});
