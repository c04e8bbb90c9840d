import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { inbox, messages } from "../src/db/schema.ts";
import { FORWARDED_MARK } from "../src/privacy/untrusted.ts";
import { hubSignature, messengerWebhook, startFakeGraph, whatsappWebhook, type FakeGraph } from "./fakes/graph-api.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";

const APP_SECRET = "meta-app-secret-for-tests-0123";
const VERIFY_TOKEN = "verify-token-for-tests";
const waitFor = <T>(check: () => T | Promise<T>) => vi.waitFor(check, { timeout: 8_000, interval: 25 });

describe.each(DATABASE_KINDS)("WhatsApp Cloud and Messenger through Parley on %s", (kind) => {
  let db: TestDatabase;
  let graph: FakeGraph;
  let model: FakeOpenAIServer;
  let parley: TestParley;

  beforeEach(async () => {
    db = await createTestDatabase(kind);
    graph = await startFakeGraph();
    model = await startFakeOpenAIServer();
    parley = await startTestParley(db, {
      META_APP_SECRET: APP_SECRET,
      META_VERIFY_TOKEN: VERIFY_TOKEN,
      META_GRAPH_API_ROOT: graph.root,
      WHATSAPP_CLOUD_TOKEN: graph.token,
      WHATSAPP_CLOUD_PHONE_NUMBER_ID: graph.phoneNumberId,
      MESSENGER_PAGE_TOKEN: graph.token,
      MODELS_INSTANT: "openai-compatible:meta-test",
      OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`,
      ACCESS_POLICY: "open",
    });
  });
  afterEach(async () => {
    await parley.stop();
    await Promise.all([graph.close(), model.close()]);
    await db.drop();
  });

  const post = (path: string, payload: unknown, signed = true) => {
    const body = JSON.stringify(payload);
    return fetch(`${parley.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(signed ? { "x-hub-signature-256": hubSignature(body, APP_SECRET) } : {}) },
      body,
    });
  };
  const now = () => String(Math.floor(Date.now() / 1000));

  it("answers the verification handshake only for the right verify token", async () => {
    const ok = await fetch(`${parley.url}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=${VERIFY_TOKEN}&hub.challenge=1158201444`);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe("1158201444");
    const bad = await fetch(`${parley.url}/webhooks/messenger?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=<b>x</b>`);
    expect(bad.status).toBe(403);
    expect(await bad.text()).not.toContain("<b>x</b>");
  });

  it("answers a WhatsApp message once, even when Meta delivers it twice", async () => {
    const payload = whatsappWebhook.payload([
      whatsappWebhook.change(graph.phoneNumberId, { messages: [whatsappWebhook.text("4915112345678", "wamid.ONE", "hello from WhatsApp", now())] }),
    ]);
    expect((await post("/webhooks/whatsapp", payload)).status).toBe(200);
    expect((await post("/webhooks/whatsapp", payload)).status).toBe(200);
    await waitFor(() => expect(graph.calls("whatsapp").filter((r) => (r.body as { type?: string }).type === "text")).toHaveLength(1));
    const sent = graph.calls("whatsapp").find((r) => (r.body as { type?: string }).type === "text")!.body as { to: string; text: { body: string } };
    expect(sent).toMatchObject({ to: "4915112345678", text: { body: "echo: hello from WhatsApp" } });
    expect(model.requests).toHaveLength(1);
    expect(await parley.database.db.select().from(inbox)).toHaveLength(1);
  });

  it("treats a forwarded WhatsApp \"/forget\" as content for the model, marked as forwarded, never as the command", async () => {
    const user = "4915187654321";
    const texts = () =>
      graph
        .calls("whatsapp")
        .map((r) => r.body as { to?: string; type?: string; text?: { body: string } })
        .filter((b) => b.type === "text" && b.to === user)
        .map((b) => b.text!.body);
    const forwarded = whatsappWebhook.forwarded(whatsappWebhook.text(user, "wamid.FWD", "/forget", now()));
    expect((await post("/webhooks/whatsapp", whatsappWebhook.payload([whatsappWebhook.change(graph.phoneNumberId, { messages: [forwarded] })]))).status).toBe(200);
    await waitFor(() => expect(texts()).toHaveLength(1));
    expect(model.requests).toHaveLength(1);
    expect(model.requests[0]?.lastUserText).toBe(`${FORWARDED_MARK}\n/forget`);
    expect(texts()[0]).not.toContain("/forget confirm");
    expect((await parley.database.db.select().from(messages)).map((m) => m.role)).toEqual(["user", "assistant"]);

    // The same text typed by the user is the command: no model call, the confirmation question instead.
    const typed = whatsappWebhook.text(user, "wamid.OWN", "/forget", now());
    expect((await post("/webhooks/whatsapp", whatsappWebhook.payload([whatsappWebhook.change(graph.phoneNumberId, { messages: [typed] })]))).status).toBe(200);
    await waitFor(() => expect(texts()).toHaveLength(2));
    expect(texts()[1]).toContain("/forget confirm");
    expect(model.requests).toHaveLength(1);
  });

  it("answers a Messenger message and ignores echoes and read receipts", async () => {
    const payload = messengerWebhook.payload([
      messengerWebhook.text("6543210987", "m_abc", "hello from Messenger", Date.now()),
      messengerWebhook.echo("6543210987", "m_echo", "an echo of the page's own message"),
      messengerWebhook.read("6543210987"),
    ]);
    expect((await post("/webhooks/messenger", payload)).status).toBe(200);
    await waitFor(() => expect(graph.calls("messenger").filter((r) => (r.body as { message?: unknown }).message)).toHaveLength(1));
    const sent = graph.calls("messenger").find((r) => (r.body as { message?: unknown }).message)!.body;
    expect(sent).toMatchObject({ recipient: { id: "6543210987" }, message: { text: "echo: hello from Messenger" } });
    expect((await parley.database.db.select().from(messages)).map((m) => m.text)).toEqual([
      "hello from Messenger",
      "echo: hello from Messenger",
    ]);
  });

  it("rejects an unsigned webhook before storing anything", async () => {
    const payload = messengerWebhook.payload([messengerWebhook.text("6543210987", "m_forged", "forged", Date.now())]);
    expect((await post("/webhooks/messenger", payload, false)).status).toBe(401);
    expect(await parley.database.db.select().from(inbox)).toEqual([]);
  });
});
