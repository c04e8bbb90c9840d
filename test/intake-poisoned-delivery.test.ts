import { sql } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { inbox, inboxDeadLetters } from "../src/db/schema.ts";
import { deliverWebhook, startFakeGraph, whatsappWebhook as wa, type FakeGraph } from "./fakes/graph-api.ts";
import { signInAdmin } from "./support/admin-client.ts";
import { DATABASE_KINDS } from "./support/databases.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";
import { useScene } from "./support/scene.ts";

/**
 * Issue 13, item 3: one bad character, or one message the database refuses, must not poison its delivery. A NUL or
 * a lone surrogate is cleaned before anything is stored; a message the database still refuses is set aside (a
 * dead-letter row, ids and SQLSTATE only) while its neighbours are stored and answered, and the delivery is 200.
 * A payload of the wrong shape is ignored with one log line and the chat's next message is answered at once.
 */

const APP_SECRET = "poison-app-secret-0123";
const HOOK_SECRET = "poison-webhook-secret_0123";
const waitFor = <T>(check: () => T | Promise<T>) => vi.waitFor(check, { timeout: 20_000, interval: 25 });
const now = () => String(Math.floor(Date.now() / 1000));

describe.each(DATABASE_KINDS)("poisoned deliveries on %s", (kind) => {
  const scene = useScene(kind);
  let graph: FakeGraph;
  let parley: TestParley;

  beforeEach(async () => {
    graph = await startFakeGraph();
  });
  afterEach(async () => {
    await parley?.stop();
    await graph.close();
  });

  const start = async (extra: Record<string, string> = {}) => {
    parley = await startTestParley(scene.db, {
      MODELS_INSTANT: "openai-compatible:poison-model",
      OPENAI_COMPATIBLE_BASE_URL: `${scene.model.url}/v1`,
      ACCESS_POLICY: "open",
      META_APP_SECRET: APP_SECRET,
      META_VERIFY_TOKEN: "poison-verify",
      META_GRAPH_API_ROOT: graph.root,
      WHATSAPP_CLOUD_TOKEN: graph.token,
      WHATSAPP_CLOUD_PHONE_NUMBER_ID: graph.phoneNumberId,
      TELEGRAM_BOT_TOKEN: scene.telegram.token,
      TELEGRAM_API_ROOT: scene.telegram.url,
      ...extra,
    });
    scene.parley = parley;
    return parley;
  };
  const whatsappTexts = () =>
    graph
      .calls("whatsapp")
      .map((r) => r.body as { to?: string; type?: string; text?: { body: string } })
      .filter((b) => b.type === "text")
      .map((b) => [b.to, b.text!.body]);
  const telegramTexts = () =>
    scene.telegram.sent
      .filter((c) => c.method === "sendMessage" && c.errorCode === undefined)
      .map((c) => [c.params.chat_id, String(c.params.text)]);
  const storedTexts = async () =>
    (await parley.database.db.select({ payload: inbox.payload }).from(inbox).orderBy(inbox.id)).map(
      (r) => (r.payload as { text: string; displayName?: string }),
    );

  it("stores and answers all three messages of a WhatsApp batch whose middle one holds a NUL and the last a lone surrogate", async () => {
    await start();
    const payload = wa.payload([
      wa.change(graph.phoneNumberId, {
        messages: [
          wa.text("4915100000001", "wamid.P1", "first, plain", now()),
          wa.text("4915100000002", "wamid.P2", "second \u0000with a NUL", now()),
          wa.text("4915100000003", "wamid.P3", "third \ud800 with a lone surrogate", now()),
        ],
        names: { "4915100000002": "Nul\u0000 Name", "4915100000003": "Lone \udc00 Name" },
      }),
    ]);
    const res = await deliverWebhook(`${parley.url}/webhooks/whatsapp`, payload, APP_SECRET);
    expect(res.status).toBe(200);
    await waitFor(() => expect(whatsappTexts()).toHaveLength(3));
    expect(whatsappTexts()).toEqual(
      expect.arrayContaining([
        ["4915100000001", "echo: first, plain"],
        ["4915100000002", "echo: second with a NUL"],
        ["4915100000003", "echo: third \ufffd with a lone surrogate"],
      ]),
    );
    expect(await storedTexts()).toEqual([
      expect.objectContaining({ text: "first, plain" }),
      expect.objectContaining({ text: "second with a NUL", displayName: "Nul Name" }),
      expect.objectContaining({ text: "third \ufffd with a lone surrogate", displayName: "Lone \ufffd Name" }),
    ]);
  });

  it("stores and answers Telegram updates holding a NUL and a lone surrogate, in text and name, through long polling", async () => {
    await start();
    const { updates } = scene.telegram;
    scene.telegram.pushUpdate(updates.privateText("plain polling", { userId: 501 }));
    scene.telegram.pushUpdate(updates.privateText("nul \u0000 polling", { userId: 502, firstName: "Nul\u0000" }));
    scene.telegram.pushUpdate(updates.privateText("lone \ud800 polling", { userId: 503, lastName: "\udbff" }));
    await waitFor(() => expect(telegramTexts()).toHaveLength(3));
    expect(telegramTexts()).toEqual(
      expect.arrayContaining([
        [501, "echo: plain polling"],
        [502, "echo: nul  polling"],
        [503, "echo: lone \ufffd polling"],
      ]),
    );
    await waitFor(() => expect(scene.telegram.pending()).toHaveLength(0));
  });

  it("answers 200 to, stores and answers Telegram webhook updates holding a NUL and a lone surrogate", async () => {
    await start({ TELEGRAM_WEBHOOK_URL: "https://parley.example.org/webhooks/telegram", TELEGRAM_WEBHOOK_SECRET: HOOK_SECRET });
    const { updates } = scene.telegram;
    const post = (update: object, id: number) =>
      fetch(`${parley.url}/webhooks/telegram`, {
        method: "POST",
        headers: { "content-type": "application/json", "X-Telegram-Bot-Api-Secret-Token": HOOK_SECRET },
        body: JSON.stringify({ ...update, update_id: id }),
      });
    const statuses = [
      (await post(updates.privateText("plain hook", { userId: 601 }), 7001)).status,
      (await post(updates.privateText("nul \u0000 hook", { userId: 602 }), 7002)).status,
      (await post(updates.privateText("lone \ud800 hook", { userId: 603, firstName: "\ud800" }), 7003)).status,
    ];
    expect(statuses).toEqual([200, 200, 200]);
    await waitFor(() => expect(telegramTexts()).toHaveLength(3));
    expect(telegramTexts()).toEqual(
      expect.arrayContaining([
        [601, "echo: plain hook"],
        [602, "echo: nul  hook"],
        [603, "echo: lone \ufffd hook"],
      ]),
    );
  });

  it("sets aside a message the database refuses, stores and answers its neighbours, and answers the delivery 200", async () => {
    await start({ ADMIN_PASSWORD: "poison-admin-password-0123" });
    // A refusal that cleaning cannot prevent: the database's own rule against one message's content.
    await parley.database.db.execute(
      sql.raw(`alter table inbox add constraint test_refuses_one check (payload->>'text' <> 'the database refuses this')`),
    );
    const payload = wa.payload([
      wa.change(graph.phoneNumberId, {
        messages: [
          wa.text("4915100000011", "wamid.R1", "before it", now()),
          wa.text("4915100000012", "wamid.R2", "the database refuses this", now()),
          wa.text("4915100000013", "wamid.R3", "after it", now()),
        ],
      }),
    ]);
    const res = await deliverWebhook(`${parley.url}/webhooks/whatsapp`, payload, APP_SECRET);
    expect(res.status).toBe(200);
    await waitFor(() => expect(whatsappTexts()).toHaveLength(2));
    expect(whatsappTexts()).toEqual(
      expect.arrayContaining([
        ["4915100000011", "echo: before it"],
        ["4915100000013", "echo: after it"],
      ]),
    );
    const dead = await parley.database.db.select().from(inboxDeadLetters);
    expect(dead).toEqual([
      expect.objectContaining({ channel: "whatsapp-cloud", platformMessageId: "wamid.R2", reason: "SQLSTATE 23514 (test_refuses_one)" }),
    ]);
    expect(parley.logs.text()).toContain("message set aside");
    expect(parley.logs.text()).not.toContain("the database refuses this");
    // Meta delivers the same batch again (e.g. a timeout on its side): still 200, nothing answered twice.
    expect((await deliverWebhook(`${parley.url}/webhooks/whatsapp`, payload, APP_SECRET)).status).toBe(200);
    expect(await parley.database.db.select().from(inboxDeadLetters)).toHaveLength(1);
    const overview = await (await signInAdmin(parley.url, "poison-admin-password-0123")).get("/admin/");
    expect(overview.text).toMatch(/<h2>Set aside \(refused by the database\)<\/h2><p class="big">1<\/p>/);
  });

  it("ignores Telegram updates of the wrong shape with one log line each, and answers the chat's next message at once", async () => {
    await start();
    const { updates } = scene.telegram;
    const user = 701;
    const numeric = updates.raw({ text: 12345 } as never, { userId: user });
    const objectText = updates.raw({ text: { bold: "x" } } as never, { userId: user });
    const noFrom = updates.privateText("no sender", { userId: user }) as unknown as { message: Record<string, unknown> };
    delete noFrom.message.from;
    const numericName = updates.privateText("name is a number", { userId: user }) as unknown as { message: { from: Record<string, unknown> } };
    numericName.message.from.first_name = 42;
    for (const update of [numeric, objectText, noFrom, numericName]) scene.telegram.pushUpdate(update as never);
    scene.telegram.pushUpdate(updates.privateText("a normal question", { userId: user }));

    await waitFor(() => expect(telegramTexts()).toEqual([[user, "echo: a normal question"]]));
    // The malformed updates never became rows; the next message was answered on its first attempt.
    await waitFor(async () =>
      expect(await parley.database.db.select().from(inbox)).toEqual([expect.objectContaining({ state: "done", attempts: 1, error: null })]),
    );
    const ignoredLines = parley.logs.lines.filter((line) => line.includes("Telegram update with an unexpected shape ignored"));
    expect(ignoredLines).toHaveLength(4);
    expect(ignoredLines.join("")).not.toContain("12345");
    await waitFor(() => expect(scene.telegram.pending()).toHaveLength(0));
  });

  it("fails at once a stored row that throws the same way every time, and answers the chat's next message without a retry", async () => {
    await start();
    // A row that got past the edge (stored by an older version, say) with a number for its text.
    const user = 801;
    await parley.database.db.insert(inbox).values({
      channel: "telegram",
      platformMessageId: "801:broken",
      chatKey: `telegram:${user}`,
      userKey: `telegram:${user}`,
      payload: {
        channel: "telegram", platformMessageId: "801:broken", chat: `telegram:${user}`, user: `telegram:${user}`,
        isGroup: false, mentionsBot: false, replyToBot: false, text: 12345, attachments: [], receivedAt: new Date().toISOString(),
      },
    });
    scene.telegram.pushUpdate(scene.telegram.updates.privateText("after the broken row", { userId: user }));
    await waitFor(() => expect(telegramTexts()).toEqual([[user, "echo: after the broken row"]]));
    await waitFor(async () => {
      const rows = await parley.database.db.select().from(inbox).orderBy(inbox.id);
      expect(rows.map((r) => [r.state, r.attempts])).toEqual([
        ["failed", 1],
        ["done", 1],
      ]);
    });
  });
});
