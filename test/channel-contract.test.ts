import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import express from "express";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createMessengerChannel } from "../channels/messenger/adapter.ts";
import { createTelegramChannel } from "../channels/telegram/adapter.ts";
import { createWebChannel } from "../channels/web/adapter.ts";
import { createWhatsAppCloudChannel } from "../channels/whatsapp-cloud/adapter.ts";
import { createWhatsAppWebChannel } from "../channels/whatsapp/adapter.ts";
import { parseKey } from "../src/core/keys.ts";
import { splitText } from "../src/core/split-text.ts";
import type { ChannelAdapter, InboundMessage } from "../src/core/types.ts";
import { deliverWebhook, messengerWebhook as fb, startFakeGraph, whatsappWebhook as wa } from "./fakes/graph-api.ts";
import { startFakeTelegram } from "./fakes/telegram-api.ts";
import { fakeClientFactory, ManualTimers, settle, waMessage } from "./fakes/whatsapp-web-client.ts";

/** One contract every channel adapter passes, each against its own fake platform. */

interface Sent {
  /** The platform chat id the message went to. */
  chat: string;
  /** The text as the platform shows it. */
  text: string;
}

interface Harness {
  adapter: ChannelAdapter;
  received: InboundMessage[];
  /** A platform user id that deliverText/deliverImage accept. */
  fromId: string;
  deliverText(fromId: string, text: string): Promise<void>;
  /** A message from the bot/page itself; undefined when the channel has no such thing. */
  deliverSelf?: (text: string) => Promise<void>;
  deliverImage?: (fromId: string) => Promise<void>;
  sent(): Sent[];
  sentTexts(): string[];
  close(): Promise<void>;
}

interface HarnessSpec {
  name: string;
  setup(): Promise<Harness>;
}

const log = pino({ level: "silent" });
const JPEG = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4]);
let ids = 0;

async function listen(mount: (app: express.Express) => void): Promise<{ server: Server; base: string }> {
  const app = express();
  mount(app);
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function stopServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

const harnesses: HarnessSpec[] = [
  {
    name: "telegram",
    async setup() {
      const fake = await startFakeTelegram();
      const { adapter } = createTelegramChannel({ token: fake.token, apiRoot: fake.url, log });
      const controller = new AbortController();
      const received: InboundMessage[] = [];
      await adapter.start(async (m) => void received.push(m), controller.signal);
      const sends = () => fake.sent.filter((c) => c.method.toLowerCase() === "sendmessage" && c.errorCode === undefined);
      const sent = () =>
        sends().map((c) => ({ chat: String(c.params.chat_id), text: String(c.params.text).replace(/<[^>]*>/g, "") }));
      return {
        adapter,
        received,
        fromId: "4242",
        async deliverText(fromId, text) {
          fake.pushUpdate(fake.updates.privateText(text, { userId: Number(fromId) }));
        },
        async deliverSelf(text) {
          fake.pushUpdate(fake.updates.privateText(text, { userId: fake.bot.id, isBot: true, chatId: 4242 }));
        },
        async deliverImage(fromId) {
          const file = fake.registerFile(JPEG);
          fake.pushUpdate(fake.updates.photo(file, undefined, { userId: Number(fromId) }));
        },
        sent,
        sentTexts: () => sent().map((s) => s.text),
        async close() {
          controller.abort();
          await fake.close();
        },
      };
    },
  },
  {
    name: "whatsapp-cloud",
    async setup() {
      const graph = await startFakeGraph();
      const secret = "wa-contract-secret";
      const channel = createWhatsAppCloudChannel({
        verifyToken: "wa-verify", appSecret: secret, token: graph.token, phoneNumberId: graph.phoneNumberId,
        graphApiRoot: graph.root, log, clock: () => new Date("2025-06-15T16:00:00Z"), timeoutMs: 2000,
      });
      const { server, base } = await listen((app) => app.use("/webhooks/whatsapp", channel.router));
      const url = `${base}/webhooks/whatsapp`;
      const controller = new AbortController();
      const received: InboundMessage[] = [];
      await channel.adapter.start(async (m) => void received.push(m), controller.signal);
      const post = async (change: unknown) => {
        const res = await deliverWebhook(url, wa.payload([change]), secret);
        expect(res.status).toBe(200);
      };
      const sent = () =>
        graph.calls("whatsapp").map((c) => {
          const body = c.body as { to: string; text: { body: string } };
          return { chat: body.to, text: body.text.body };
        });
      return {
        adapter: channel.adapter,
        received,
        fromId: "4915112345678",
        deliverText: (fromId, text) => post(wa.change(graph.phoneNumberId, { messages: [wa.text(fromId, `wamid.C${++ids}`, text)] })),
        async deliverSelf(text) {
          // Our own sends come back only as status events; a message to another number is not ours either.
          await post(wa.change(graph.phoneNumberId, { statuses: [wa.status(`wamid.OUT${++ids}`, "4915112345678", "read")] }));
          await post(wa.change("999999", { messages: [wa.text("4915112345678", `wamid.C${++ids}`, text)] }));
        },
        async deliverImage(fromId) {
          const mediaId = String(7000 + ++ids);
          graph.addMedia({ id: mediaId, mimeType: "image/jpeg", bytes: JPEG });
          await post(wa.change(graph.phoneNumberId, { messages: [wa.image(fromId, `wamid.C${++ids}`, mediaId)] }));
        },
        sent,
        sentTexts: () => sent().map((s) => s.text),
        async close() {
          controller.abort();
          await stopServer(server);
          await graph.close();
        },
      };
    },
  },
  {
    name: "messenger",
    async setup() {
      const graph = await startFakeGraph();
      const secret = "fb-contract-secret";
      const channel = createMessengerChannel({ verifyToken: "fb-verify", appSecret: secret, token: graph.token, graphApiRoot: graph.root, log,
        clock: () => new Date(1_750_000_060_000), // a minute after the builders' timestamps: the 24-hour window is open
      });
      const { server, base } = await listen((app) => app.use("/webhooks/messenger", channel.router));
      const url = `${base}/webhooks/messenger`;
      const controller = new AbortController();
      const received: InboundMessage[] = [];
      await channel.adapter.start(async (m) => void received.push(m), controller.signal);
      const post = async (event: unknown) => {
        const res = await deliverWebhook(url, fb.payload([event]), secret);
        expect(res.status).toBe(200);
      };
      const sent = () =>
        graph.calls("messenger").map((c) => {
          const body = c.body as { recipient: { id: string }; message?: { text?: string } };
          return { chat: body.recipient.id, text: body.message?.text ?? "" };
        }).filter((s) => s.text !== "");
      return {
        adapter: channel.adapter,
        received,
        fromId: "2900000000000001",
        deliverText: (fromId, text) => post(fb.text(fromId, `m_c${++ids}`, text)),
        deliverSelf: (text) => post(fb.echo("2900000000000001", `m_echo${++ids}`, text)),
        deliverImage: (fromId) => post(fb.attachment(fromId, `m_c${++ids}`, "image", graph.addCdnFile(`photo${ids}.jpg`, JPEG))),
        sent,
        sentTexts: () => sent().map((s) => s.text),
        async close() {
          controller.abort();
          await stopServer(server);
          await graph.close();
        },
      };
    },
  },
  {
    name: "whatsapp",
    async setup() {
      const dataDir = mkdtempSync(join(tmpdir(), "parley-contract-wa-"));
      const procRoot = mkdtempSync(join(tmpdir(), "parley-contract-proc-"));
      const factory = fakeClientFactory();
      const { adapter } = createWhatsAppWebChannel({
        dataDir, chromiumPath: "/usr/bin/chromium", log, createClient: factory.create, timers: new ManualTimers(),
        random: () => 0.5, clock: () => new Date("2030-01-01T00:00:00Z"), procRoot, killProcess: () => {},
        qr: { loadModule: async (name) => { throw new Error(`Cannot find package '${name}'`); }, terminal: () => {} },
      });
      const controller = new AbortController();
      const received: InboundMessage[] = [];
      await adapter.start(async (m) => void received.push(m), controller.signal);
      factory.latest().connect();
      await settle();
      expect(adapter.status().state).toBe("running");
      const client = () => factory.latest();
      const sent = () => client().sent.map((s) => ({ chat: s.chatId, text: s.text }));
      return {
        adapter,
        received,
        fromId: "4915112345678@c.us",
        async deliverText(fromId, text) {
          client().receive(waMessage({ chat: fromId, body: text }));
          await settle();
        },
        async deliverSelf(text) {
          client().receive(waMessage({ chat: "4915112345678@c.us", body: text, fromMe: true }));
          await settle();
        },
        async deliverImage(fromId) {
          client().receive(waMessage({ chat: fromId, type: "image", mimetype: "image/jpeg", hasMedia: true, media: null }));
          await settle();
        },
        sent,
        sentTexts: () => sent().map((s) => s.text),
        async close() {
          controller.abort();
          rmSync(dataDir, { recursive: true, force: true });
          rmSync(procRoot, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: "web",
    async setup() {
      const dataDir = mkdtempSync(join(tmpdir(), "parley-contract-web-"));
      const credentials = { token: "t".repeat(43), secret: "s".repeat(43) };
      const channel = createWebChannel({ log, dataDir, maxUploadBytes: 1024 * 1024, mode: "public", credentials });
      const { server, base } = await listen((app) => app.use("/chat", channel.router));
      const controller = new AbortController();
      const received: InboundMessage[] = [];
      await channel.adapter.start(async (m) => void received.push(m), controller.signal);
      // A visitor, as the page opens its session: the server names its chat (web:v-<id>), and the cookie proves it.
      const session = await fetch(`${base}/chat/api/session`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
      const cookie = session.headers.getSetCookie()[0]!.split(";")[0]!;
      const clientId = `v-${cookie.split(".")[1]}`;
      // The page's event stream: every "message" event is a send that reached this chat.
      const streamStop = new AbortController();
      const events: Sent[] = [];
      const res = await fetch(`${base}/chat/api/events`, { headers: { Accept: "text/event-stream", Cookie: cookie }, signal: streamStop.signal });
      expect(res.status).toBe(200);
      void (async () => {
        const reader = res.body!.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          buffer += decoder.decode(value, { stream: true });
          for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const lines = block.split("\n");
            const event = lines.find((l) => l.startsWith("event:"))?.slice(6).trim() ?? "message";
            const data = lines.find((l) => l.startsWith("data:"))?.slice(5);
            if (event === "message" && data !== undefined) events.push({ chat: clientId, text: (JSON.parse(data) as { text: string }).text });
          }
        }
      })().catch(() => {});
      return {
        adapter: channel.adapter,
        received,
        fromId: clientId,
        async deliverText(fromId, text) {
          expect(fromId).toBe(clientId); // the one sender this harness has a session of
          const r = await fetch(`${base}/chat/api/messages`, {
            method: "POST", headers: { "Content-Type": "application/json", Cookie: cookie },
            body: JSON.stringify({ id: `00000000-0000-4000-8000-${String(++ids).padStart(12, "0")}`, text }),
          });
          expect(r.status).toBe(202);
        },
        async deliverImage(fromId) {
          // The page uploads the bytes first, then sends the message that names them.
          expect(fromId).toBe(clientId);
          const up = await fetch(`${base}/chat/api/uploads`, { method: "POST", headers: { "Content-Type": "image/jpeg", Cookie: cookie }, body: JPEG });
          expect(up.status).toBe(201);
          const { ref } = (await up.json()) as { ref: string };
          const r = await fetch(`${base}/chat/api/messages`, {
            method: "POST", headers: { "Content-Type": "application/json", Cookie: cookie },
            body: JSON.stringify({ id: `00000000-0000-4000-8000-${String(++ids).padStart(12, "0")}`, text: "", image: { ref } }),
          });
          expect(r.status).toBe(202);
        },
        sent: () => events,
        sentTexts: () => events.map((e) => e.text),
        async close() {
          streamStop.abort();
          controller.abort();
          await stopServer(server);
          rmSync(dataDir, { recursive: true, force: true });
        },
      };
    },
  },
];

const waitFor = (check: () => void) => vi.waitFor(check, { timeout: 5000, interval: 20 });

/** 10,000 characters of plain words (no Markdown markers), with sentences and paragraphs to split at. */
function longText(): string {
  const words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"];
  let text = "";
  for (let i = 0; text.length < 10_000; i++) {
    text += words[i % words.length]! + (i % 17 === 16 ? ".\n\n" : i % 7 === 6 ? ". " : " ");
  }
  return text.slice(0, 10_000);
}

const noSpace = (s: string) => s.replace(/\s+/g, "");

describe.each(harnesses)("channel contract: $name", ({ name, setup }) => {
  let h: Harness;
  beforeAll(async () => {
    h = await setup();
  });
  afterAll(async () => {
    await h?.close();
  });

  it("key round trip: chat and user keys name the channel, and a send reaches the same platform chat", async () => {
    const before = h.received.length;
    await h.deliverText(h.fromId, "round trip please");
    await waitFor(() => expect(h.received.length).toBe(before + 1));
    const message = h.received.at(-1)!;
    expect(message.text).toBe("round trip please");
    expect(parseKey(message.chat)).toEqual({ channel: name, id: expect.any(String) });
    expect(parseKey(message.user).channel).toBe(name);
    expect(h.adapter.name).toBe(name);
    const sentBefore = h.sent().length;
    await h.adapter.send(message.chat, "hi");
    await waitFor(() => expect(h.sent().length).toBe(sentBefore + 1));
    expect(h.sent().at(-1)).toEqual({ chat: parseKey(message.chat).id, text: "hi" });
    expect(h.sent().at(-1)!.chat).toBe(h.fromId);
  });

  const selfTest = name === "web" ? it.skip : it;
  // web: the browser page is the only sender; the bot never posts to /api/messages, so there is no self message.
  selfTest("self messages ignored: the bot's own messages never reach onMessage", async () => {
    const before = h.received.length;
    await h.deliverSelf!("my own words");
    await h.deliverText(h.fromId, "sentinel after self");
    await waitFor(() => expect(h.received.map((m) => m.text)).toContain("sentinel after self"));
    expect(h.received.slice(before).map((m) => m.text)).toEqual(["sentinel after self"]);
  });

  it("an image arrives as an attachment of kind image", async () => {
    const before = h.received.length;
    await h.deliverImage!(h.fromId);
    await waitFor(() => expect(h.received.length).toBe(before + 1));
    const message = h.received.at(-1)!;
    expect(message.attachments.map((a) => a.kind)).toEqual(["image"]);
    expect(parseKey(message.chat).channel).toBe(name);
  });

  it("long replies split within the limit", async () => {
    const text = longText();
    const chat = `${name}:${h.fromId}` as InboundMessage["chat"];
    const chunks = splitText(text, h.adapter.limits.maxText);
    expect(chunks.length).toBeGreaterThan(1);
    const before = h.sent().length;
    for (const chunk of chunks) {
      expect(chunk.length).toBeLessThanOrEqual(h.adapter.limits.maxText);
      await expect(h.adapter.send(chat, chunk)).resolves.toEqual({ id: expect.any(String) });
    }
    await waitFor(() => expect(h.sent().length).toBe(before + chunks.length));
    const texts = h.sentTexts().slice(before);
    for (const t of texts) expect(t.length).toBeLessThanOrEqual(h.adapter.limits.maxText);
    expect(noSpace(texts.join(""))).toBe(noSpace(text));
  });
});
