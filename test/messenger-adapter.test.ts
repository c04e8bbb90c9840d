import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMessengerChannel, type MessengerChannel } from "../channels/messenger/adapter.ts";
import { DeliveryError, RateLimitedError, RefusedInputError, errorMessage } from "../src/core/errors.ts";
import type { InboundMessage, OnMessage, OutboundFile } from "../src/core/types.ts";
import { deliverWebhook, messengerWebhook as fb, startFakeGraph, type FakeGraph, type GraphRequest } from "./fakes/graph-api.ts";

/** The real Messenger adapter against the fake Graph API, and its webhook on a real express server. */

const APP_SECRET = "fb-app-secret-for-tests";
const PSID = "2900000000000001";

let graph: FakeGraph;
let server: Server;
let webhookUrl: string;
const lines: string[] = [];
const log = pino({ level: "debug" }, { write: (line: string) => void lines.push(line) });
const errors: unknown[] = [];
const controller = new AbortController();
let onMessage: OnMessage = async () => {};
let channel: MessengerChannel;

beforeAll(async () => {
  graph = await startFakeGraph();
  channel = createMessengerChannel({ verifyToken: "fb-verify", appSecret: APP_SECRET, token: graph.token, graphApiRoot: graph.root, log });
  const app = express();
  app.use("/webhooks/messenger", channel.router);
  server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  webhookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/messenger`;
  await channel.adapter.start((m) => onMessage(m), controller.signal);
});
afterAll(async () => {
  controller.abort();
  await new Promise((resolve) => server.close(resolve));
  await graph.close();
  expect(lines.join("")).not.toContain(graph.token);
  expect(errors.length).toBeGreaterThan(3);
  for (const error of errors) expect(`${errorMessage(error)} ${JSON.stringify(error)}`).not.toContain(graph.token);
});

const adapter = () => channel.adapter;
const fail = <T>(promise: Promise<T>) => promise.then(() => expect.fail("expected a rejection"), (error: unknown) => (errors.push(error), error));
const deliver = (payload: unknown) => deliverWebhook(webhookUrl, payload, APP_SECRET);

describe("inbound", () => {
  it("passes all 4 messages of 2 entries x 2 to onMessage and skips echoes, reads, deliveries and postbacks", async () => {
    const stored: InboundMessage[] = [];
    onMessage = async (m) => {
      await new Promise((r) => setTimeout(r, 5));
      stored.push(m);
    };
    const image = graph.addCdnFile("photo.jpg", new Uint8Array([1, 2, 3]));
    const response = await deliver(
      fb.payload(
        [fb.text("1001", "m_1", "one"), fb.echo("1001", "m_echo", "our reply"), fb.attachment("1002", "m_2", "image", image)],
        [fb.read("1001"), fb.text("1003", "m_3", "three"), fb.delivery("1003"), fb.postback("1003"), fb.text("1001", "m_4", "four")],
      ),
    );
    expect(response.status).toBe(200);
    expect(stored.map((m) => [m.platformMessageId, m.chat, m.text, m.attachments.map((a) => a.kind)])).toEqual([
      ["m_1", "messenger:1001", "one", []],
      ["m_2", "messenger:1002", "", ["image"]],
      ["m_3", "messenger:1003", "three", []],
      ["m_4", "messenger:1001", "four", []],
    ]);
  });

  it("answers 500 when storing fails", async () => {
    onMessage = async () => {
      throw new Error("database down");
    };
    expect((await deliver(fb.payload([fb.text("1001", "m_down", "x")]))).status).toBe(500);
  });
});

describe("send", () => {
  it("calls /me/messages with the token in the header only, as plain text, and returns the message id", async () => {
    const { id } = await adapter().send(`messenger:${PSID}`, "## Result\n**Done** in `2 s`: [log](https://l.example)");
    expect(id).toMatch(/^m_FAKE\d+$/);
    const call = graph.calls("messenger").at(-1)!;
    expect(call.path).toBe("/v23.0/me/messages");
    expect(call.query).toEqual({});
    expect(call.headers.authorization).toBe(`Bearer ${graph.token}`);
    expect(call.body).toEqual({
      recipient: { id: PSID },
      messaging_type: "RESPONSE",
      message: { text: "Result\nDone in 2 s: log (https://l.example)" },
    });
  });

  it("sends 2000 characters and refuses 2001 without calling Graph", async () => {
    await adapter().send(`messenger:${PSID}`, "é".repeat(2000));
    const before = graph.calls("messenger").length;
    const error = await fail(adapter().send(`messenger:${PSID}`, "é".repeat(2001)));
    expect(error).toBeInstanceOf(DeliveryError);
    expect(error).toMatchObject({ retryable: false });
    expect(graph.calls("messenger").length).toBe(before);
  });

  it("maps the page rate limit (32) to RateLimitedError using X-Business-Use-Case-Usage", async () => {
    graph.failNext(/me\/messages$/, {
      status: 400,
      error: { code: 32, message: "(#32) Page request limit reached" },
      headers: { "x-business-use-case-usage": JSON.stringify({ "1": [{ type: "pages", estimated_time_to_regain_access: 3 }] }) },
    });
    const error = await fail(adapter().send(`messenger:${PSID}`, "hi"));
    expect(error).toBeInstanceOf(RateLimitedError);
    expect((error as RateLimitedError).retryAfterMs).toBe(180_000);
  });

  it("maps 10 / 2018278 to a final error saying the 24-hour window closed", async () => {
    graph.failNext(/me\/messages$/, { status: 400, error: { code: 10, error_subcode: 2018278, message: "(#10) This message is sent outside of allowed window." } });
    const error = await fail(adapter().send(`messenger:${PSID}`, "late"));
    expect(error).toMatchObject({ name: "DeliveryError", retryable: false, message: expect.stringContaining("24-hour window closed") });
  });

  it("refuses a WhatsApp chat key", async () => {
    expect(await fail(adapter().send("whatsapp-cloud:111", "x"))).toMatchObject({ name: "DeliveryError", retryable: false });
  });
});

describe("sendFile", () => {
  const bytes = new Uint8Array([...Buffer.from('{"role":"assistant","text":"ça va"}\n'), 0x00, 0xff, 0xfe, 0xc3, 0x28]);
  const file = (overrides: Partial<OutboundFile> = {}): OutboundFile => ({
    name: "parley-export-2026-01-01.jsonl",
    mimeType: "text/plain",
    bytes,
    caption: "Everything stored about you, as JSON lines (1 line). /forget deletes all of it.",
    ...overrides,
  });
  const sendFile = (chat: string, f: OutboundFile) => adapter().sendFile!(chat as `messenger:${string}`, f);
  const isUpload = (r: GraphRequest) => r.files.filedata !== undefined;

  it("sends the file as a multipart Send API call with its name, type and exact bytes, then the caption as text", async () => {
    const before = graph.calls("messenger").length;
    const { id } = await sendFile(`messenger:${PSID}`, file());
    expect(id).toMatch(/^m_FAKE\d+$/);
    const [upload, caption, ...rest] = graph.calls("messenger").slice(before);
    expect(rest).toEqual([]);
    expect(upload!.headers.authorization).toBe(`Bearer ${graph.token}`);
    expect(upload!.headers["content-type"]).toMatch(/^multipart\/form-data; boundary=/);
    expect(upload!.query).toEqual({});
    expect(upload!.body).toEqual({
      recipient: { id: PSID },
      messaging_type: "RESPONSE",
      message: { attachment: { type: "file", payload: { is_reusable: false } } },
    });
    expect(upload!.files.filedata).toMatchObject({ name: "parley-export-2026-01-01.jsonl", type: "text/plain" });
    expect(Buffer.from(upload!.files.filedata!.bytes).equals(Buffer.from(bytes))).toBe(true);
    expect(caption!.body).toEqual({ recipient: { id: PSID }, messaging_type: "RESPONSE", message: { text: file().caption } });
  });

  it("sends no caption message when there is none", async () => {
    const before = graph.calls("messenger").length;
    await sendFile(`messenger:${PSID}`, file({ caption: undefined }));
    expect(graph.calls("messenger").slice(before).map(isUpload)).toEqual([true]);
  });

  it("maps Graph errors of the upload like send's, and then sends no caption", async () => {
    const before = graph.calls("messenger").length;
    graph.failNext(isUpload, { status: 400, error: { code: 10, error_subcode: 2018278, message: "(#10) This message is sent outside of allowed window." } });
    const closed = await fail(sendFile(`messenger:${PSID}`, file()));
    expect(closed).toMatchObject({ name: "DeliveryError", retryable: false, message: expect.stringContaining("24-hour window closed") });
    graph.failNext(isUpload, { status: 400, error: { code: 613, message: "(#613) Calls to this api have exceeded the rate limit." }, headers: { "retry-after": "30" } });
    const limited = await fail(sendFile(`messenger:${PSID}`, file()));
    expect(limited).toBeInstanceOf(RateLimitedError);
    expect((limited as RateLimitedError).retryAfterMs).toBe(30_000);
    graph.failNext(isUpload, { status: 500, error: { code: 1, message: "An unknown error has occurred." } });
    expect(await fail(sendFile(`messenger:${PSID}`, file()))).toMatchObject({ name: "DeliveryError", retryable: true });
    expect(graph.calls("messenger").slice(before).map(isUpload)).toEqual([true, true, true]);
  });

  it("still reports the file as sent when only its caption fails, and logs that", async () => {
    graph.failNext((r) => r.path.endsWith("/me/messages") && !isUpload(r), { status: 500, error: { code: 2, message: "Service temporarily unavailable" } });
    const logged = lines.length;
    const { id } = await sendFile(`messenger:${PSID}`, file());
    expect(id).toMatch(/^m_FAKE\d+$/);
    expect(lines.slice(logged).join("")).toContain("the file was sent but its caption was not");
  });

  it("refuses an empty file and one over Messenger's 25 MB without calling Graph", async () => {
    const before = graph.requests.length;
    expect(await fail(sendFile(`messenger:${PSID}`, file({ bytes: new Uint8Array() })))).toMatchObject({ name: "DeliveryError", retryable: false });
    const big = await fail(sendFile(`messenger:${PSID}`, file({ bytes: new Uint8Array(25 * 1024 * 1024 + 1) })));
    expect(big).toMatchObject({ name: "DeliveryError", retryable: false, message: expect.stringContaining("25 MB") });
    expect(await fail(sendFile("whatsapp-cloud:111", file()))).toMatchObject({ name: "DeliveryError", retryable: false });
    expect(graph.requests.length).toBe(before);
  });
});

describe("typing", () => {
  it("sends typing_on, at most once per 15 s, again after a reply", async () => {
    const before = graph.calls("messenger").length;
    onMessage = async () => {};
    await deliver(fb.payload([fb.text("4004", "m_t", "hi", Date.now())]));
    await adapter().typing!("messenger:4004");
    await adapter().typing!("messenger:4004");
    expect(graph.calls("messenger").slice(before).map((c) => c.body)).toEqual([{ recipient: { id: "4004" }, sender_action: "typing_on" }]);
    await adapter().send("messenger:4004", "reply");
    await adapter().typing!("messenger:4004");
    expect(graph.calls("messenger").slice(before)).toHaveLength(3);
  });
});

describe("download", () => {
  const signal = new AbortController().signal;

  it("fetches the CDN URL without the page token", async () => {
    const url = graph.addCdnFile("voice.mp4", new Uint8Array([9, 8, 7, 6]));
    const bytes = await adapter().download!({ kind: "audio", ref: url }, 1024, signal);
    expect([...bytes]).toEqual([9, 8, 7, 6]);
    expect(graph.calls("download").at(-1)!.headers.authorization).toBeUndefined();
  });

  it("refuses a declared Content-Length over the cap, and cuts a chunked stream at the cap", async () => {
    const big = graph.addCdnFile("big.bin", new Uint8Array(4096));
    expect(await fail(adapter().download!({ kind: "file", ref: big }, 1024, signal))).toBeInstanceOf(RefusedInputError);
    const endless = graph.addCdnFile("endless.bin", new Uint8Array(), { endless: true });
    const cap = 200 * 1024;
    expect(await fail(adapter().download!({ kind: "file", ref: endless }, cap, signal))).toBeInstanceOf(RefusedInputError);
    await new Promise((r) => setTimeout(r, 50));
    expect(graph.bytesServed("/cdn/endless.bin")).toBeLessThan(cap + 16 * 1024 * 1024);
  });

  it.each(["file:///etc/passwd", "ftp://example.com/x", "not a url"])("refuses %s", async (ref) => {
    const before = graph.requests.length;
    expect(await fail(adapter().download!({ kind: "file", ref }, 1024, signal))).toMatchObject({ name: "DeliveryError", retryable: false });
    expect(graph.requests.length).toBe(before);
  });
});

describe("a rejected page token", () => {
  it("sets the status to failed naming MESSENGER_PAGE_TOKEN", async () => {
    const other = createMessengerChannel({ verifyToken: "v", appSecret: "s", token: "EAAGnotvalid000000000000", graphApiRoot: graph.root, log });
    await other.adapter.start(async () => {}, new AbortController().signal);
    const error = await fail(other.adapter.typing!("messenger:1"));
    expect(error).toMatchObject({ name: "DeliveryError", retryable: false });
    expect(other.adapter.status()).toEqual({ state: "failed", detail: expect.stringContaining("MESSENGER_PAGE_TOKEN was rejected") });
    expect(lines.join("")).not.toContain("EAAGnotvalid000000000000");
  });
});
