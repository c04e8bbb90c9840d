import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { inbox } from "../src/db/schema.ts";
import { hubSignature, messengerWebhook, startFakeGraph, whatsappWebhook, type FakeGraph } from "./fakes/graph-api.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";

/**
 * WhatsApp and Messenger take a free-form reply only within 24 hours of the person's message. A message that waited
 * longer (Parley was down, the queue was long) is not sent to a model whose answer could not be delivered.
 */
const APP_SECRET = "meta-app-secret-for-tests-0123";
const waitFor = <T>(check: () => T | Promise<T>) => vi.waitFor(check, { timeout: 8_000, interval: 25 });
const secondsAgo = (s: number) => String(Math.floor(Date.now() / 1000) - s);

describe.each(DATABASE_KINDS)("Meta's 24-hour reply window on %s", (kind) => {
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
      META_VERIFY_TOKEN: "verify-token-for-tests",
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

  const post = async (path: string, payload: unknown) => {
    const body = JSON.stringify(payload);
    const res = await fetch(`${parley.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-hub-signature-256": hubSignature(body, APP_SECRET) },
      body,
    });
    expect(res.status).toBe(200);
  };
  const whatsappTexts = (to: string) =>
    graph
      .calls("whatsapp")
      .map((r) => r.body as { to?: string; type?: string; text?: { body: string } })
      .filter((b) => b.type === "text" && b.to === to)
      .map((b) => b.text!.body);

  it("a WhatsApp message older than the window costs no model call; a fresh one is answered", async () => {
    const user = "4915112340001";
    await post(
      "/webhooks/whatsapp",
      whatsappWebhook.payload([
        whatsappWebhook.change(graph.phoneNumberId, { messages: [whatsappWebhook.text(user, "wamid.OLD", "from yesterday", secondsAgo(25 * 3600))] }),
      ]),
    );
    await waitFor(async () => {
      const [row] = await parley.database.db.select().from(inbox).where(eq(inbox.platformMessageId, "wamid.OLD"));
      expect(row?.state).toBe("failed");
    });
    await post(
      "/webhooks/whatsapp",
      whatsappWebhook.payload([
        whatsappWebhook.change(graph.phoneNumberId, { messages: [whatsappWebhook.text(user, "wamid.NEW", "from today", secondsAgo(5))] }),
      ]),
    );
    await waitFor(() => expect(whatsappTexts(user)).toEqual(["echo: from today"]));
    expect(model.requests).toHaveLength(1);
  });

  it("a Messenger message older than the window costs no model call", async () => {
    const old = messengerWebhook.text("6749182203345511", "m_OLD", "from yesterday");
    const fresh = messengerWebhook.text("6749182203345511", "m_NEW", "from today");
    const at = (event: typeof old, ms: number) => ({ ...event, timestamp: ms });
    await post("/webhooks/messenger", messengerWebhook.payload([at(old, Date.now() - 25 * 3600 * 1000)]));
    await waitFor(async () => {
      const [row] = await parley.database.db.select().from(inbox).where(eq(inbox.platformMessageId, "m_OLD"));
      expect(row?.state).toBe("failed");
    });
    await post("/webhooks/messenger", messengerWebhook.payload([at(fresh, Date.now())]));
    await waitFor(async () => {
      const [row] = await parley.database.db.select().from(inbox).where(eq(inbox.platformMessageId, "m_NEW"));
      expect(row?.state).toBe("done");
    });
    expect(model.requests).toHaveLength(1);
  });
});
