import { sql } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { inbox, logs } from "../src/db/schema.ts";
import { deliverWebhook, startFakeGraph, whatsappWebhook as wa, type FakeGraph } from "./fakes/graph-api.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { startFakeTelegram, type FakeTelegram } from "./fakes/telegram-api.ts";
import { signInAdmin } from "./support/admin-client.ts";
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { startLoggedParley, type LoggedParley } from "./support/logged-parley.ts";

/**
 * Issue 13, item 4: message text and display names never reach the log. Every failure path that can be provoked
 * from outside is fed a canary, in the text and in the sender's name: the database refusing the inbox row, the
 * user row and the message row (constraints added to the test's database), a model answering an error, the Graph
 * API refusing the reply. The canary must appear in none of: the lines written to stdout, the logs table, the
 * admin log page (over HTTP, signed in).
 */

const CANARY = "zebra-canary-5521";
const APP_SECRET = "canary-app-secret-0123";
const ADMIN_PASSWORD = "canary-admin-password-0123";
const MODEL = "canary-model";
const waitFor = <T>(check: () => T | Promise<T>) => vi.waitFor(check, { timeout: 30_000, interval: 50 });
const now = () => String(Math.floor(Date.now() / 1000));

describe.each(DATABASE_KINDS)("no message text or name in the logs when things fail, on %s", (kind) => {
  let db: TestDatabase;
  let telegram: FakeTelegram;
  let graph: FakeGraph;
  let model: FakeOpenAIServer;
  let parley: LoggedParley;

  beforeEach(async () => {
    db = await createTestDatabase(kind);
    [telegram, graph, model] = await Promise.all([startFakeTelegram(), startFakeGraph(), startFakeOpenAIServer()]);
    parley = await startLoggedParley(db, {
      TELEGRAM_BOT_TOKEN: telegram.token,
      TELEGRAM_API_ROOT: telegram.url,
      META_APP_SECRET: APP_SECRET,
      META_VERIFY_TOKEN: "canary-verify",
      META_GRAPH_API_ROOT: graph.root,
      WHATSAPP_CLOUD_TOKEN: graph.token,
      WHATSAPP_CLOUD_PHONE_NUMBER_ID: graph.phoneNumberId,
      MODELS_INSTANT: `openai-compatible:${MODEL}`,
      OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`,
      ACCESS_POLICY: "open",
      ADMIN_PASSWORD,
    });
  });
  afterEach(async () => {
    await parley.stop();
    await Promise.all([telegram.close(), graph.close(), model.close()]);
    await db.drop();
  });

  // Five failure paths over three fakes: given more than the default 30 s on a loaded machine.
  it("keeps the canary out of stdout, the logs table and /admin/logs on every failure path", { timeout: 90_000 }, async () => {
    const execute = (statement: string) => parley.database.db.execute(sql.raw(statement));
    await execute(`alter table inbox add constraint canary_inbox check (payload->>'text' not like '%refuse-at-inbox%')`);
    await execute(`alter table users add constraint canary_users check (display_name not like '%refuse-name%')`);
    await execute(`alter table messages add constraint canary_messages check (text not like '%refuse-at-messages%')`);

    // 1. The inbox refuses the row (the original defect): set aside.
    const refusedAtInbox = wa.payload([
      wa.change(graph.phoneNumberId, {
        messages: [wa.text("4915100000901", "wamid.C1", `refuse-at-inbox ${CANARY}`, now())],
        names: { "4915100000901": `Name ${CANARY}` },
      }),
    ]);
    expect((await deliverWebhook(`${parley.url}/webhooks/whatsapp`, refusedAtInbox, APP_SECRET)).status).toBe(200);
    // 2. The users table refuses the sender's name; 3. the messages table refuses the text.
    telegram.pushUpdate(telegram.updates.privateText(`users fail ${CANARY}`, { userId: 902, firstName: `refuse-name ${CANARY}` }));
    telegram.pushUpdate(telegram.updates.privateText(`refuse-at-messages ${CANARY}`, { userId: 903, firstName: `Name ${CANARY}` }));
    // 4. The model answers an error (the AI SDK's error holds the whole prompt).
    model.reply(MODEL, { error: { status: 400, message: "Invalid request: the input could not be processed." } });
    telegram.pushUpdate(telegram.updates.privateText(`model fails ${CANARY}`, { userId: 904, firstName: `Name ${CANARY}` }));
    // 5. The Graph API refuses the reply, its body echoing what was sent.
    graph.failNext(/\/messages$/, {
      status: 400,
      error: { message: "(#100) Invalid parameter", code: 100, error_user_msg: `text: ${CANARY}`, error_data: { body: CANARY } } as never,
    });
    const graphRefuses = wa.payload([
      wa.change(graph.phoneNumberId, {
        messages: [wa.text("4915100000905", "wamid.C5", `graph fails ${CANARY}`, now())],
        names: { "4915100000905": `Name ${CANARY}` },
      }),
    ]);
    expect((await deliverWebhook(`${parley.url}/webhooks/whatsapp`, graphRefuses, APP_SECRET)).status).toBe(200);

    // Every path did fail, and was logged.
    await waitFor(async () => {
      const rows = await parley.database.db.select({ state: inbox.state, chat: inbox.chatKey }).from(inbox);
      expect(rows.filter((r) => r.state === "pending" || r.state === "working")).toEqual([]);
      expect(rows).toHaveLength(4);
    });
    const stdout = () => parley.text();
    const failed = (line: string) => line.includes("message cannot be handled");
    await waitFor(() => {
      expect(stdout()).toContain("message set aside");
      expect(parley.lines.filter(failed)).toHaveLength(2);
      expect(stdout()).toMatch(/model call failed/);
      expect(stdout()).toMatch(/reply cannot be delivered/);
    });

    expect(stdout()).not.toContain(CANARY);
    // What is logged still says what failed.
    expect(stdout()).toContain("SQLSTATE 23514 (table users, constraint canary_users)");
    expect(stdout()).toContain("SQLSTATE 23514 (table messages, constraint canary_messages)");
    expect(stdout()).toContain("SQLSTATE 23514 (canary_inbox)");
    await waitFor(async () => {
      const stored = await parley.database.db.select().from(logs);
      expect(stored.filter((row) => row.message === "reply cannot be delivered")).toHaveLength(1);
      expect(JSON.stringify(stored)).not.toContain(CANARY);
    });
    const admin = await signInAdmin(parley.url, ADMIN_PASSWORD);
    for (const path of ["/admin/logs", "/admin/logs?level=debug", `/admin/logs?q=${encodeURIComponent("canary")}`]) {
      const page = await admin.get(path);
      expect(page.status).toBe(200);
      expect(page.text).not.toContain(CANARY);
    }
    expect((await admin.get("/admin/logs")).text).toContain("canary_messages");
  });
});
