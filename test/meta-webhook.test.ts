import { createHmac } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import express, { type Router } from "express";
import { pino } from "pino";
import { afterEach, beforeAll, afterAll, describe, expect, it } from "vitest";
import { createMessengerChannel } from "../channels/messenger/adapter.ts";
import { createWhatsAppCloudChannel } from "../channels/whatsapp-cloud/adapter.ts";
import type { ChannelAdapter, InboundMessage, OnMessage } from "../src/core/types.ts";
import { hubSignature, messengerWebhook, startFakeGraph, whatsappWebhook, type FakeGraph } from "./fakes/graph-api.ts";

/**
 * The webhook front door both Meta channels share (channels/meta/webhook.ts), driven over real HTTP through each
 * channel's own router: the GET handshake, the signature over the raw bytes, the body cap, readiness and the
 * answer that tells Meta whether to deliver again.
 */

const APP_SECRET = "app-secret-0123456789abcdef";
const VERIFY_TOKEN = "verify-token-xyz";

let graph: FakeGraph;
beforeAll(async () => {
  graph = await startFakeGraph();
});
afterAll(async () => {
  await graph.close();
});

interface Harness {
  url: string;
  adapter: ChannelAdapter;
  received: InboundMessage[];
  logs(): string;
  /** fetch sends a string as its UTF-8 bytes, the same bytes hubSignature() signs. */
  post(body: string, headers?: Record<string, string>): Promise<Response>;
  /** Posts with a valid signature over exactly these bytes. */
  signedPost(body: string): Promise<Response>;
  stop(): void;
}

const servers: Server[] = [];
const controllers: AbortController[] = [];
afterEach(async () => {
  for (const c of controllers.splice(0)) c.abort();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

type ChannelCase = {
  name: string;
  path: string;
  make(log: pino.Logger): { adapter: ChannelAdapter; router: Router };
  /** A valid payload carrying one text message. */
  sample(text: string): unknown;
};

const channels: ChannelCase[] = [
  {
    name: "WhatsApp Cloud",
    path: "/webhooks/whatsapp",
    make: (log) =>
      createWhatsAppCloudChannel({
        verifyToken: VERIFY_TOKEN, appSecret: APP_SECRET, token: graph.token, phoneNumberId: graph.phoneNumberId, graphApiRoot: graph.root, log,
      }),
    sample: (text) =>
      whatsappWebhook.payload([whatsappWebhook.change(graph.phoneNumberId, { messages: [whatsappWebhook.text("4915112345678", "wamid.S1", text)] })]),
  },
  {
    name: "Messenger",
    path: "/webhooks/messenger",
    make: (log) => createMessengerChannel({ verifyToken: VERIFY_TOKEN, appSecret: APP_SECRET, token: graph.token, graphApiRoot: graph.root, log }),
    sample: (text) => messengerWebhook.payload([messengerWebhook.text("2900000000000001", "m_S1", text)]),
  },
];

async function harness(channel: ChannelCase, opts: { start?: boolean; onMessage?: OnMessage; jsonFirst?: boolean } = {}): Promise<Harness> {
  const lines: string[] = [];
  const log = pino({ level: "debug" }, { write: (line: string) => void lines.push(line) });
  const { adapter, router } = channel.make(log);
  const app = express();
  if (opts.jsonFirst) app.use(express.json());
  app.use(channel.path, router);
  const server = createServer(app);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${channel.path}`;
  const received: InboundMessage[] = [];
  const controller = new AbortController();
  controllers.push(controller);
  if (opts.start !== false) await adapter.start(opts.onMessage ?? (async (m) => void received.push(m)), controller.signal);
  const post = (body: string, headers: Record<string, string> = {}) =>
    fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
  return {
    url, adapter, received, post,
    logs: () => lines.join(""),
    signedPost: (body) => post(body, { "x-hub-signature-256": hubSignature(body, APP_SECRET) }),
    stop: () => controller.abort(),
  };
}

describe.each(channels)("$name webhook", (channel) => {
  describe("GET verification handshake", () => {
    const verify = (h: Harness, params: Record<string, string>) => fetch(`${h.url}?${new URLSearchParams(params)}`);

    it("answers the right verify token with exactly the challenge as text/plain", async () => {
      const h = await harness(channel);
      const response = await verify(h, { "hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444" });
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
      expect(await response.text()).toBe("1158201444");
    });

    it("echoes a challenge with markup as inert text, never as HTML", async () => {
      const h = await harness(channel);
      const challenge = "<script>alert(1)</script>";
      const response = await verify(h, { "hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": challenge });
      expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
      expect(response.headers.get("x-content-type-options")).toBe("nosniff");
      expect(await response.text()).toBe(challenge);
    });

    it.each([
      ["a wrong token", { "hub.mode": "subscribe", "hub.verify_token": "verify-token-xyZ" }],
      ["a longer token", { "hub.mode": "subscribe", "hub.verify_token": `${VERIFY_TOKEN}x` }],
      ["no token", { "hub.mode": "subscribe" }],
      ["another mode", { "hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN }],
    ])("refuses %s with 403 and does not echo the challenge", async (_name, params) => {
      const h = await harness(channel);
      const response = await verify(h, { ...params, "hub.challenge": "CHALLENGE-4242" });
      expect(response.status).toBe(403);
      expect(await response.text()).not.toContain("CHALLENGE-4242");
      expect(h.logs()).toContain("verification refused");
    });
  });

  describe("POST signature", () => {
    it.each([
      ["no signature header", (): Record<string, string> => ({})],
      ["only a valid SHA-1 X-Hub-Signature", (body: string) => ({ "x-hub-signature": `sha1=${createHmac("sha1", APP_SECRET).update(body).digest("hex")}` })],
      ["a signature made with another secret", (body: string) => ({ "x-hub-signature-256": hubSignature(body, `${APP_SECRET}!`) })],
      ["a sha1= prefix in X-Hub-Signature-256", (body: string) => ({ "x-hub-signature-256": hubSignature(body, APP_SECRET).replace("sha256=", "sha1=") })],
      ["a truncated signature", (body: string) => ({ "x-hub-signature-256": hubSignature(body, APP_SECRET).slice(0, -2) })],
    ])("refuses %s with 401 and stores nothing", async (_name, headersFor) => {
      const h = await harness(channel);
      const body = JSON.stringify(channel.sample("forged"));
      const response = await h.post(body, headersFor(body));
      expect(response.status).toBe(401);
      expect(h.received).toEqual([]);
      expect(h.logs()).toContain("refused");
      expect(h.logs()).not.toContain(APP_SECRET);
    });

    it("refuses a body with one byte changed after signing", async () => {
      const h = await harness(channel);
      const body = JSON.stringify(channel.sample("pay 10 euros"));
      const signature = hubSignature(body, APP_SECRET);
      const response = await h.post(body.replace("10", "90"), { "x-hub-signature-256": signature });
      expect(response.status).toBe(401);
      expect(h.received).toEqual([]);
    });

    it("accepts emoji and \\u00e9 escapes signed over the raw bytes, and refuses the same payload re-serialised", async () => {
      const h = await harness(channel);
      // As Meta sends it: non-ASCII escaped, a literal emoji elsewhere, its own spacing.
      const pretty = JSON.stringify(channel.sample("caf\u00e9 \u{1F600}"), null, 1).replace("caf\u00e9", "caf\\u00e9");
      expect(pretty).toContain("\\u00e9");
      const response = await h.signedPost(pretty);
      expect(response.status).toBe(200);
      expect(h.received.map((m) => m.text)).toEqual(["café 😀"]);

      const reserialised = JSON.stringify(JSON.parse(pretty));
      const again = await h.post(reserialised, { "x-hub-signature-256": hubSignature(pretty, APP_SECRET) });
      expect(again.status).toBe(401);
      expect(h.received).toHaveLength(1);
    });

    it("fails closed when a JSON parser ran before the router (the signed bytes are gone)", async () => {
      const h = await harness(channel, { jsonFirst: true });
      const response = await h.signedPost(JSON.stringify(channel.sample("hello")));
      expect(response.status).toBe(401);
      expect(h.received).toEqual([]);
      expect(h.logs()).toContain("mount the router before any body parser");
    });
  });

  describe("POST body and readiness", () => {
    it("answers 413 to a 2 MB body, signed or not, without calling onMessage", async () => {
      const h = await harness(channel);
      const huge = JSON.stringify(channel.sample("x".repeat(2 * 1024 * 1024)));
      const response = await h.signedPost(huge);
      expect(response.status).toBe(413);
      expect(h.received).toEqual([]);
      expect(h.logs()).toContain("refused with 413");
    });

    it("refuses a compressed body instead of verifying inflated bytes", async () => {
      const h = await harness(channel);
      const body = JSON.stringify(channel.sample("zipped"));
      const response = await h.post(body, { "x-hub-signature-256": hubSignature(body, APP_SECRET), "content-encoding": "gzip" });
      expect(response.status).toBe(415);
      expect(h.received).toEqual([]);
    });

    it("answers 503 before start() and after the stop, so Meta delivers again", async () => {
      const h = await harness(channel, { start: false });
      const body = JSON.stringify(channel.sample("too early"));
      expect((await h.signedPost(body)).status).toBe(503);
      const controller = new AbortController();
      await h.adapter.start(async (m) => void h.received.push(m), controller.signal);
      expect(h.adapter.status().state).toBe("running");
      expect((await h.signedPost(body)).status).toBe(200);
      controller.abort();
      expect(h.adapter.status().state).toBe("stopped");
      expect((await h.signedPost(body)).status).toBe(503);
      expect(h.received).toHaveLength(1);
    });

    it.each([
      ["a body that is not JSON", "{not json"],
      ["JSON of another shape", JSON.stringify({ hello: "world" })],
      ["an entry of the wrong type", JSON.stringify({ object: channel.path.includes("whatsapp") ? "whatsapp_business_account" : "page", entry: [42, null, "x"] })],
      ["JSON null", "null"],
    ])("answers 200 to a signed body with %s, ignores it and logs it", async (_name, body) => {
      const h = await harness(channel);
      const response = await h.signedPost(body);
      expect(response.status).toBe(200);
      expect(h.received).toEqual([]);
      expect(h.logs()).toMatch(/not JSON was ignored|unexpected shape ignored/);
    });

    it("answers 500 when onMessage rejects, and 200 when the redelivery is stored", async () => {
      let attempts = 0;
      const stored: string[] = [];
      const h = await harness(channel, {
        onMessage: async (m) => {
          if (++attempts === 1) throw new Error("database unavailable");
          stored.push(m.platformMessageId);
        },
      });
      const body = JSON.stringify(channel.sample("retry me"));
      expect((await h.signedPost(body)).status).toBe(500);
      expect(h.logs()).toContain("database unavailable");
      expect((await h.signedPost(body)).status).toBe(200);
      expect(stored).toHaveLength(1);
    });
  });
});

describe("construction fails closed", () => {
  const log = pino({ level: "silent" });
  it.each([
    ["WhatsApp without an app secret", () => createWhatsAppCloudChannel({ verifyToken: "v", appSecret: "", token: "t", phoneNumberId: "1", log }), /WHATSAPP_CLOUD_APP_SECRET/],
    ["WhatsApp without a verify token", () => createWhatsAppCloudChannel({ verifyToken: " ", appSecret: "s", token: "t", phoneNumberId: "1", log }), /WHATSAPP_CLOUD_VERIFY_TOKEN/],
    ["WhatsApp without a token", () => createWhatsAppCloudChannel({ verifyToken: "v", appSecret: "s", token: "", phoneNumberId: "1", log }), /WHATSAPP_CLOUD_TOKEN/],
    ["WhatsApp without a phone number id", () => createWhatsAppCloudChannel({ verifyToken: "v", appSecret: "s", token: "t", phoneNumberId: "", log }), /WHATSAPP_CLOUD_PHONE_NUMBER_ID/],
    ["Messenger without an app secret", () => createMessengerChannel({ verifyToken: "v", appSecret: "", token: "t", log }), /MESSENGER_APP_SECRET/],
    ["Messenger without a verify token", () => createMessengerChannel({ verifyToken: "", appSecret: "s", token: "t", log }), /MESSENGER_VERIFY_TOKEN/],
    ["Messenger without a page token", () => createMessengerChannel({ verifyToken: "v", appSecret: "s", token: "", log }), /MESSENGER_PAGE_TOKEN/],
  ])("%s throws, naming the variable", (_name, make, variable) => {
    expect(make).toThrow(variable);
  });
});
