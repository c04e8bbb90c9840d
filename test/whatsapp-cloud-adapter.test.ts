import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWhatsAppCloudChannel, type WhatsAppCloudChannel } from "../channels/whatsapp-cloud/adapter.ts";
import { DeliveryError, RateLimitedError, RefusedInputError, errorMessage } from "../src/core/errors.ts";
import type { InboundMessage, OnMessage, OutboundFile } from "../src/core/types.ts";
import { deliverWebhook, startFakeGraph, whatsappWebhook as wa, type FakeGraph } from "./fakes/graph-api.ts";

/** The real WhatsApp Cloud adapter against the fake Graph API, and its webhook on a real express server. */

const APP_SECRET = "wa-app-secret-for-tests";
const VERIFY_TOKEN = "wa-verify";

let graph: FakeGraph;
let server: Server;
let webhookUrl: string;
const lines: string[] = [];
const log = pino({ level: "debug" }, { write: (line: string) => void lines.push(line) });
/** Every error an adapter call threw, to check that none carries the token. */
const errors: unknown[] = [];
const controller = new AbortController();
let onMessage: OnMessage = async () => {};
let now = new Date("2025-06-15T16:00:00Z"); // wa.text's timestamp 1750000000 is 2025-06-15T15:06:40Z
let channel: WhatsAppCloudChannel;

beforeAll(async () => {
  graph = await startFakeGraph();
  channel = createWhatsAppCloudChannel({
    verifyToken: VERIFY_TOKEN, appSecret: APP_SECRET, token: graph.token, phoneNumberId: graph.phoneNumberId,
    graphApiRoot: graph.root, log, clock: () => now, timeoutMs: 300,
  });
  const app = express();
  app.use("/webhooks/whatsapp", channel.router);
  server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  webhookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/whatsapp`;
  await channel.adapter.start((m) => onMessage(m), controller.signal);
});
afterAll(async () => {
  controller.abort();
  await new Promise((resolve) => server.close(resolve));
  await graph.close();
  // Every path below, failures included, logged through this plain pino logger: the token is in no line, no error.
  expect(lines.length).toBeGreaterThan(5);
  expect(lines.join("")).not.toContain(graph.token);
  expect(errors.length).toBeGreaterThan(5);
  for (const error of errors) expect(`${errorMessage(error)} ${JSON.stringify(error)}`).not.toContain(graph.token);
});

const adapter = () => channel.adapter;
const fail = <T>(promise: Promise<T>) => promise.then(() => expect.fail("expected a rejection"), (error: unknown) => (errors.push(error), error));
const deliver = (payload: unknown) => deliverWebhook(webhookUrl, payload, APP_SECRET);

describe("inbound", () => {
  it("passes all 4 messages of 2 entries x 2 to onMessage, and answers 200 only after each was stored", async () => {
    const stored: InboundMessage[] = [];
    onMessage = async (m) => {
      await new Promise((r) => setTimeout(r, 10));
      stored.push(m);
    };
    const response = await deliver(
      wa.payload(
        [wa.change(graph.phoneNumberId, { messages: [wa.text("111", "wamid.B1", "one"), wa.text("222", "wamid.B2", "two")] })],
        [wa.change(graph.phoneNumberId, { messages: [wa.text("333", "wamid.B3", "three"), wa.image("111", "wamid.B4", "777", "four")] })],
      ),
    );
    expect(response.status).toBe(200);
    expect(stored.map((m) => [m.platformMessageId, m.chat, m.text, m.attachments.length])).toEqual([
      ["wamid.B1", "whatsapp-cloud:111", "one", 0],
      ["wamid.B2", "whatsapp-cloud:222", "two", 0],
      ["wamid.B3", "whatsapp-cloud:333", "three", 0],
      ["wamid.B4", "whatsapp-cloud:111", "four", 1],
    ]);
  });

  it("ignores statuses, stickers and other phone numbers without calling onMessage", async () => {
    let calls = 0;
    onMessage = async () => void calls++;
    const response = await deliver(
      wa.payload([
        wa.change(graph.phoneNumberId, { statuses: [wa.status("wamid.OUT", "111", "read")] }),
        wa.change(graph.phoneNumberId, { messages: [{ from: "111", id: "wamid.STK", timestamp: "1750000000", type: "sticker", sticker: { id: "1" } }] }),
        wa.change("999999", { messages: [wa.text("111", "wamid.ELSE", "not ours")] }),
      ]),
    );
    expect(response.status).toBe(200);
    expect(calls).toBe(0);
  });

  it("answers 500 when storing fails, so Meta delivers the payload again", async () => {
    onMessage = async () => {
      throw new Error("database down");
    };
    const response = await deliver(wa.payload([wa.change(graph.phoneNumberId, { messages: [wa.text("111", "wamid.DOWN", "x")] })]));
    expect(response.status).toBe(500);
  });
});

describe("send", () => {
  it("posts WhatsApp's text message with the token in the header, formatted for WhatsApp, and returns the wamid", async () => {
    const { id } = await adapter().send("whatsapp-cloud:4915112345678", "**Hello** _there_, see [docs](https://d.example)", { replyTo: "wamid.IN" });
    expect(id).toMatch(/^wamid\.FAKE\d+$/);
    const call = graph.calls("whatsapp").at(-1)!;
    expect(call.path).toBe(`/v23.0/${graph.phoneNumberId}/messages`);
    expect(call.headers.authorization).toBe(`Bearer ${graph.token}`);
    expect(call.query).toEqual({});
    expect(call.body).toEqual({
      messaging_product: "whatsapp",
      recipient_type: "individual",
      to: "4915112345678",
      type: "text",
      text: { preview_url: false, body: "*Hello* _there_, see docs (https://d.example)" },
      context: { message_id: "wamid.IN" },
    });
  });

  it("sends exactly maxText characters and refuses one more without calling Graph", async () => {
    const before = graph.calls("whatsapp").length;
    await adapter().send("whatsapp-cloud:111", "a".repeat(4096));
    const error = await fail(adapter().send("whatsapp-cloud:111", "a".repeat(4097)));
    expect(error).toBeInstanceOf(DeliveryError);
    expect(error).toMatchObject({ retryable: false });
    expect(graph.calls("whatsapp").length).toBe(before + 1);
  });

  it("refuses a chat of another channel", async () => {
    const error = await fail(adapter().send("messenger:123", "x"));
    expect(error).toMatchObject({ name: "DeliveryError", retryable: false });
  });

  it("maps Graph's rate limit (130429) to RateLimitedError with the wait it asks for", async () => {
    graph.failNext(/messages$/, { status: 400, error: { code: 130429, message: "(#130429) Rate limit hit" }, headers: { "retry-after": "12" } });
    const error = await fail(adapter().send("whatsapp-cloud:111", "hi"));
    expect(error).toBeInstanceOf(RateLimitedError);
    expect((error as RateLimitedError).retryAfterMs).toBe(12_000);
  });

  it("maps HTTP 429 without a hint to a minute's wait", async () => {
    graph.failNext(/messages$/, { status: 429, error: { code: 131056, message: "(#131056) (Business Account, Consumer Account) pair rate limit hit" } });
    const error = await fail(adapter().send("whatsapp-cloud:111", "hi"));
    expect(error).toBeInstanceOf(RateLimitedError);
    expect((error as RateLimitedError).retryAfterMs).toBe(60_000);
  });

  it("maps 131047 to a final error saying the 24-hour window closed", async () => {
    graph.failNext(/messages$/, { status: 400, error: { code: 131047, message: "Re-engagement message", error_subcode: 2494010 } });
    const error = await fail(adapter().send("whatsapp-cloud:111", "late reply"));
    expect(error).toBeInstanceOf(DeliveryError);
    expect(error).toMatchObject({ retryable: false, message: expect.stringContaining("24-hour window closed") });
  });

  it("maps a 5xx, a network failure and a timeout to retryable errors", async () => {
    graph.failNext(/messages$/, { status: 500, error: { code: 1, message: "An unknown error has occurred." } });
    expect(await fail(adapter().send("whatsapp-cloud:111", "x"))).toMatchObject({ name: "DeliveryError", retryable: true });

    graph.failNext(/messages$/, { status: 200, delayMs: 2_000 });
    const slow = await fail(adapter().send("whatsapp-cloud:111", "x"));
    expect(slow).toMatchObject({ name: "DeliveryError", retryable: true, message: expect.stringContaining("did not answer within 300 ms") });

    const offline = createWhatsAppCloudChannel({
      verifyToken: "v", appSecret: "s", token: graph.token, phoneNumberId: graph.phoneNumberId, graphApiRoot: "http://127.0.0.1:9/v23.0", log,
    });
    expect(await fail(offline.adapter.send("whatsapp-cloud:111", "x"))).toMatchObject({ name: "DeliveryError", retryable: true });
  });

  it("does not send into a closed 24-hour window it knows of", async () => {
    onMessage = async () => {};
    expect((await deliver(wa.payload([wa.change(graph.phoneNumberId, { messages: [wa.text("555", "wamid.OLD", "hello", "1750000000")] })]))).status).toBe(200);
    const before = graph.calls("whatsapp").length;
    now = new Date((1_750_000_000 + 25 * 3600) * 1000);
    try {
      const error = await fail(adapter().send("whatsapp-cloud:555", "a day later"));
      expect(error).toMatchObject({ name: "DeliveryError", retryable: false, message: expect.stringContaining("24-hour window closed") });
      expect(graph.calls("whatsapp").length).toBe(before);
    } finally {
      now = new Date("2025-06-15T16:00:00Z");
    }
  });
});

describe("sendFile", () => {
  // Every byte value, a NUL and an invalid UTF-8 sequence included: the upload must not re-encode anything.
  const bytes = new Uint8Array([...Buffer.from('{"role":"user","text":"hé"}\n'), ...Array.from({ length: 256 }, (_, i) => i), 0xc3, 0x28]);
  const file = (overrides: Partial<OutboundFile> = {}): OutboundFile => ({
    name: "parley-export-2026-01-01.jsonl",
    mimeType: "text/plain",
    bytes,
    caption: "Everything stored about you, as JSON lines (1 line). /forget deletes all of it.",
    ...overrides,
  });
  const sendFile = (chat: string, f: OutboundFile, opts?: { replyTo?: string }) => adapter().sendFile!(chat as `whatsapp-cloud:${string}`, f, opts);

  it("uploads the bytes with their name and type, then sends the media id as a document with name and caption", async () => {
    const { id } = await sendFile("whatsapp-cloud:4915112345678", file(), { replyTo: "wamid.ASK" });
    expect(id).toMatch(/^wamid\.FAKE\d+$/);

    const upload = graph.calls("upload").at(-1)!;
    expect(upload.path).toBe(`/v23.0/${graph.phoneNumberId}/media`);
    expect(upload.headers.authorization).toBe(`Bearer ${graph.token}`);
    expect(upload.headers["content-type"]).toMatch(/^multipart\/form-data; boundary=/);
    expect(upload.query).toEqual({});
    expect(upload.body).toEqual({ messaging_product: "whatsapp", type: "text/plain" });
    expect(upload.files.file).toMatchObject({ name: "parley-export-2026-01-01.jsonl", type: "text/plain" });
    expect(Buffer.from(upload.files.file!.bytes).equals(Buffer.from(bytes))).toBe(true);

    const send = graph.calls("whatsapp").at(-1)!;
    expect(send.query).toEqual({});
    const mediaId = (send.body as { document: { id: string } }).document.id;
    expect(Buffer.from(graph.uploads.get(mediaId)!.bytes).equals(Buffer.from(bytes))).toBe(true);
    expect(send.body).toEqual({
      messaging_product: "whatsapp",
      recipient_type: "individual",
      to: "4915112345678",
      type: "document",
      document: { id: mediaId, filename: "parley-export-2026-01-01.jsonl", caption: file().caption },
      context: { message_id: "wamid.ASK" },
    });
  });

  it("cuts a caption to WhatsApp's 1024 characters and leaves an empty one out", async () => {
    await sendFile("whatsapp-cloud:111", file({ caption: "x".repeat(2000) }));
    const caption = (graph.calls("whatsapp").at(-1)!.body as { document: { caption: string } }).document.caption;
    expect(caption).toHaveLength(1024);
    expect(caption.endsWith("…")).toBe(true);
    await sendFile("whatsapp-cloud:111", file({ caption: "  " }));
    expect((graph.calls("whatsapp").at(-1)!.body as { document: object }).document).not.toHaveProperty("caption");
  });

  it("maps Graph errors of the upload and of the send like send's", async () => {
    graph.failNext(/\/media$/, { status: 400, error: { code: 130429, message: "(#130429) Rate limit hit" }, headers: { "retry-after": "7" } });
    const limited = await fail(sendFile("whatsapp-cloud:111", file()));
    expect(limited).toBeInstanceOf(RateLimitedError);
    expect((limited as RateLimitedError).retryAfterMs).toBe(7_000);

    const sends = graph.calls("whatsapp").length;
    graph.failNext(/\/media$/, { status: 503, error: { code: 2, message: "Service temporarily unavailable" } });
    expect(await fail(sendFile("whatsapp-cloud:111", file()))).toMatchObject({ name: "DeliveryError", retryable: true });
    expect(graph.calls("whatsapp").length).toBe(sends);

    graph.failNext(/messages$/, { status: 400, error: { code: 131047, message: "Re-engagement message" } });
    const closed = await fail(sendFile("whatsapp-cloud:111", file()));
    expect(closed).toMatchObject({ name: "DeliveryError", retryable: false, message: expect.stringContaining("24-hour window closed") });

    // A type WhatsApp does not deliver: the fake answers as Graph does (131053), a final error the service turns into text.
    const refused = await fail(sendFile("whatsapp-cloud:111", file({ mimeType: "application/x-ndjson" })));
    expect(refused).toMatchObject({ name: "DeliveryError", retryable: false, message: expect.stringContaining("131053") });
  });

  it("refuses an empty file, a non-MIME type, another channel's chat and a known closed window without calling Graph", async () => {
    onMessage = async () => {};
    await deliver(wa.payload([wa.change(graph.phoneNumberId, { messages: [wa.text("556", "wamid.OLD2", "hello", "1750000000")] })]));
    const before = graph.requests.length;
    expect(await fail(sendFile("whatsapp-cloud:111", file({ bytes: new Uint8Array() })))).toMatchObject({ retryable: false, message: expect.stringContaining("empty") });
    expect(await fail(sendFile("whatsapp-cloud:111", file({ mimeType: "text/plain\r\nX-Evil: 1" })))).toMatchObject({ retryable: false });
    expect(await fail(sendFile("messenger:123", file()))).toMatchObject({ name: "DeliveryError", retryable: false });
    now = new Date((1_750_000_000 + 25 * 3600) * 1000);
    try {
      expect(await fail(sendFile("whatsapp-cloud:556", file()))).toMatchObject({ retryable: false, message: expect.stringContaining("24-hour window closed") });
    } finally {
      now = new Date("2025-06-15T16:00:00Z");
    }
    expect(graph.requests.length).toBe(before);
  });
});

describe("typing", () => {
  it("needs the user's last message id: unknown chat → nothing is sent", async () => {
    const before = graph.calls("whatsapp").length;
    await adapter().typing!("whatsapp-cloud:404");
    expect(graph.calls("whatsapp").length).toBe(before);
  });

  it("marks the last inbound message read with a typing indicator, once per 20 s, again after a reply", async () => {
    onMessage = async () => {};
    await deliver(wa.payload([wa.change(graph.phoneNumberId, { messages: [wa.text("777", "wamid.T1", "hi")] })]));
    const before = graph.calls("whatsapp").length;
    await adapter().typing!("whatsapp-cloud:777");
    await adapter().typing!("whatsapp-cloud:777");
    const calls = graph.calls("whatsapp").slice(before);
    expect(calls.map((c) => c.body)).toEqual([
      { messaging_product: "whatsapp", status: "read", message_id: "wamid.T1", typing_indicator: { type: "text" } },
    ]);
    await adapter().send("whatsapp-cloud:777", "answer");
    await adapter().typing!("whatsapp-cloud:777");
    expect(graph.calls("whatsapp").slice(before)).toHaveLength(3);
  });
});

describe("download", () => {
  const signal = new AbortController().signal;
  const image = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4]);

  it("looks the media up, then fetches its URL with the token", async () => {
    graph.addMedia({ id: "3001", mimeType: "image/jpeg", bytes: image });
    const bytes = await adapter().download!({ kind: "image", ref: "3001" }, 1024, signal);
    expect([...bytes]).toEqual([...image]);
    const [lookup, fetched] = [graph.calls("media").at(-1)!, graph.calls("download").at(-1)!];
    expect(lookup.path).toBe("/v23.0/3001");
    expect(fetched.headers.authorization).toBe(`Bearer ${graph.token}`);
  });

  it("refuses media whose declared size is over the cap before downloading it", async () => {
    graph.addMedia({ id: "3002", mimeType: "image/jpeg", bytes: image, declaredSize: 8 * 1024 * 1024 });
    const downloads = graph.calls("download").length;
    const error = await fail(adapter().download!({ kind: "image", ref: "3002" }, 5 * 1024 * 1024, signal));
    expect(error).toBeInstanceOf(RefusedInputError);
    expect((error as RefusedInputError).userMessage).toBe("That file is too large for me (8 MB): the limit is 5 MB.");
    expect(graph.calls("download").length).toBe(downloads);
  });

  it("aborts a download without Content-Length once more than the cap arrived", async () => {
    graph.addMedia({ id: "3003", mimeType: "audio/ogg", endless: true, declaredSize: 1 });
    const cap = 256 * 1024;
    const error = await fail(adapter().download!({ kind: "audio", ref: "3003" }, cap, signal));
    expect(error).toBeInstanceOf(RefusedInputError);
    await new Promise((r) => setTimeout(r, 50));
    expect(graph.bytesServed("/media/3003")).toBeGreaterThan(cap);
    expect(graph.bytesServed("/media/3003")).toBeLessThan(cap + 16 * 1024 * 1024);
  });

  it("refuses a known size over the cap without any request", async () => {
    const before = graph.requests.length;
    const error = await fail(adapter().download!({ kind: "file", ref: "3004", sizeBytes: 2048 }, 1024, signal));
    expect(error).toBeInstanceOf(RefusedInputError);
    expect(graph.requests.length).toBe(before);
  });
});

describe("a rejected token", () => {
  it("fails the send for good and sets the status to failed, naming the variable and not the value", async () => {
    const wrongToken = "EAAGwrongtoken0000000000000000";
    const other = createWhatsAppCloudChannel({
      verifyToken: "v", appSecret: "s", token: wrongToken, phoneNumberId: graph.phoneNumberId, graphApiRoot: graph.root, log,
    });
    const stop = new AbortController();
    await other.adapter.start(async () => {}, stop.signal);
    expect(other.adapter.status().state).toBe("running");
    const error = await fail(other.adapter.send("whatsapp-cloud:111", "x"));
    expect(error).toMatchObject({ name: "DeliveryError", retryable: false, message: expect.stringContaining("WHATSAPP_CLOUD_TOKEN was rejected") });
    expect(other.adapter.status()).toEqual({ state: "failed", detail: expect.stringContaining("WHATSAPP_CLOUD_TOKEN was rejected") });
    expect(JSON.stringify(other.adapter.status())).not.toContain(wrongToken);
    expect(errorMessage(error)).not.toContain(wrongToken);
    stop.abort();
    expect(other.adapter.status().state).toBe("failed");
    expect(lines.join("")).not.toContain(wrongToken);
  });
});
