import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import express, { type NextFunction, type Request, type Response } from "express";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createWebChannel } from "../channels/web/adapter.ts";
import { createEventHub, type EventSink } from "../channels/web/event-hub.ts";
import { createFileStore } from "../channels/web/file-store.ts";
import { isLoopbackAddress, isLoopbackHost, NOT_LOOPBACK_MESSAGE, requireLoopback } from "../channels/web/loopback.ts";
import { normalizeWebMessage } from "../channels/web/normalize.ts";
import { DeliveryError, RefusedInputError } from "../src/core/errors.ts";
import { chatKey } from "../src/core/keys.ts";
import type { InboundMessage } from "../src/core/types.ts";

const NOW = new Date("2025-03-04T05:06:07.000Z");
const CSP =
  "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";
const log = pino({ level: "silent" });
const MB = 1024 * 1024;
/** The upload cap of the main channel: small, so the oversize tests stream little. */
const MAX_UPLOAD = 1 * MB;

const dataDir = mkdtempSync(join(tmpdir(), "parley-web-"));
const uploadsDir = join(dataDir, "web-uploads");
const main = createWebChannel({ log, clock: () => NOW, dataDir, maxUploadBytes: MAX_UPLOAD });
const idle = createWebChannel({ log, dataDir, maxUploadBytes: MAX_UPLOAD }); // never started
const lifecycle = createWebChannel({ log, dataDir, maxUploadBytes: MAX_UPLOAD }); // started and stopped by one test
const mainStop = new AbortController();
const lifecycleStop = new AbortController();

const received: InboundMessage[] = [];
let failNext = false;

let server: Server;
let base: string;

beforeAll(async () => {
  const app = express();
  app.use("/chat", main.router);
  app.use("/idle", idle.router);
  app.use("/life", lifecycle.router);
  server = app.listen(0, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve).once("error", reject);
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  await main.adapter.start(async (message) => {
    if (failNext) {
      failNext = false;
      throw new Error("database is down");
    }
    received.push(message);
  }, mainStop.signal);
});

afterAll(async () => {
  for (const stream of openStreams) stream.close();
  mainStop.abort();
  lifecycleStop.abort();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dataDir, { recursive: true, force: true });
});

// ---- helpers ------------------------------------------------------------------------------------------------------

let counter = 0;
/** A fresh UUID-shaped client or message id per call, so the tests do not share chats. */
function uuid(): string {
  counter += 1;
  return `00000000-0000-4000-8000-${String(counter).padStart(12, "0")}`;
}

function post(path: string, body: unknown): Promise<globalThis.Response> {
  return fetch(`${base}${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

interface SseEvent {
  id?: string;
  event: string;
  data: unknown;
}

interface EventStream {
  status: number;
  next(timeoutMs?: number): Promise<SseEvent>;
  expectQuiet(ms?: number): Promise<void>;
  ended(timeoutMs?: number): Promise<boolean>;
  close(): void;
}

const openStreams = new Set<EventStream>();

async function openEvents(path: string, clientId: string, options: { lastEventId?: string; query?: string } = {}) {
  const controller = new AbortController();
  const headers: Record<string, string> = { Accept: "text/event-stream" };
  if (options.lastEventId) headers["Last-Event-ID"] = options.lastEventId;
  const res = await fetch(`${base}${path}/api/events?clientId=${encodeURIComponent(clientId)}${options.query ?? ""}`, {
    headers,
    signal: controller.signal,
  });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let reading: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;

  function take(): SseEvent | undefined {
    for (;;) {
      const end = buffer.indexOf("\n\n");
      if (end < 0) return undefined;
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const fields: Record<string, string> = {};
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        fields[line.slice(0, colon)] = line.slice(colon + 1).replace(/^ /, "");
      }
      if (fields.data === undefined) continue; // comments, `retry:`
      return { id: fields.id, event: fields.event ?? "message", data: JSON.parse(fields.data) };
    }
  }

  /** The next event, "timeout" when none came in time, or "end" when the server closed the stream. */
  async function read(timeoutMs: number): Promise<SseEvent | "timeout" | "end"> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const event = take();
      if (event) return event;
      reading ??= reader.read();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(resolve, Math.max(0, deadline - Date.now()), "timeout");
      });
      const result = await Promise.race([reading, timeout]).finally(() => clearTimeout(timer));
      if (result === "timeout") return "timeout";
      reading = undefined;
      if (result.done) return "end";
      buffer += decoder.decode(result.value, { stream: true });
    }
  }

  const stream: EventStream = {
    status: res.status,
    async next(timeoutMs = 2000) {
      const result = await read(timeoutMs);
      if (typeof result === "string") throw new Error(`expected an event, got ${result}`);
      return result;
    },
    async expectQuiet(ms = 150) {
      expect(await read(ms)).toBe("timeout");
    },
    async ended(timeoutMs = 2000) {
      return (await read(timeoutMs)) === "end";
    },
    close() {
      controller.abort();
      reader.cancel().catch(() => {});
      openStreams.delete(stream);
    },
  };
  openStreams.add(stream);
  return stream;
}

/** Resolves once the server has registered `count` open pages (the status detail counts them). */
async function waitForConnections(count: number): Promise<void> {
  const want = `${count} open page${count === 1 ? "" : "s"}`;
  for (let i = 0; i < 100 && main.adapter.status().detail !== want; i++) await new Promise((r) => setTimeout(r, 10));
  expect(main.adapter.status().detail).toBe(want);
}

// ---- the page -----------------------------------------------------------------------------------------------------

describe("web chat page", () => {
  it("serves the page with a strict CSP and its script and style sheet as separate files", async () => {
    const res = await fetch(`${base}/chat`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    expect(res.headers.get("content-security-policy")).toBe(CSP);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    const html = await res.text();
    expect(html).toContain('<script src="/chat/chat.js" defer></script>');
    expect(html).toContain('<link rel="stylesheet" href="/chat/chat.css">');
    expect(html).toContain('<textarea id="input"');
    expect(html).toContain("New conversation");
    // Nothing inline that the CSP would block, and nothing fetched from elsewhere.
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/\sstyle=|<style|\son[a-z]+=/i);
    expect(html).not.toMatch(/https?:\/\//);

    const js = await fetch(`${base}/chat/chat.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toMatch(/^text\/javascript; charset=utf-8/);
    expect(js.headers.get("x-content-type-options")).toBe("nosniff");
    const css = await fetch(`${base}/chat/chat.css`);
    expect(css.status).toBe(200);
    expect(css.headers.get("content-type")).toMatch(/^text\/css; charset=utf-8/);
    expect(await css.text()).toMatch(/prefers-color-scheme: dark/);
    expect(await js.text()).toContain("EventSource");
  });

  it("names its assets under the path it is mounted at", async () => {
    const html = await (await fetch(`${base}/life/`)).text();
    expect(html).toContain('src="/life/chat.js"');
  });

  it("builds the DOM from text only: no innerHTML, outerHTML, insertAdjacentHTML or document.write", async () => {
    const js = await (await fetch(`${base}/chat/chat.js`)).text();
    expect(js).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
    expect(js).toMatch(/textContent/);
    expect(js).toMatch(/rel = "noopener noreferrer"/);
    expect(js).toMatch(/url\.protocol === "http:" \|\| url\.protocol === "https:"/);
  });
});

// ---- receiving messages -------------------------------------------------------------------------------------------

describe("POST /chat/api/messages", () => {
  it("normalizes the message and answers 202 after onMessage resolved", async () => {
    const clientId = uuid();
    const id = uuid();
    const res = await post("/chat/api/messages", { clientId, id, text: "  Hello **Parley**\n  " });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ ok: true });
    expect(received.at(-1)).toEqual({
      channel: "web",
      platformMessageId: `${clientId}:${id}`,
      chat: `web:${clientId}`,
      user: `web:${clientId}`,
      isGroup: false,
      mentionsBot: false,
      replyToBot: false,
      text: "Hello **Parley**",
      attachments: [],
      receivedAt: NOW,
    } satisfies InboundMessage);
  });

  it("gives a retried POST the same platformMessageId", async () => {
    const body = { clientId: uuid(), id: uuid(), text: "once" };
    expect((await post("/chat/api/messages", body)).status).toBe(202);
    expect((await post("/chat/api/messages", body)).status).toBe(202);
    const [a, b] = received.slice(-2);
    expect(a!.platformMessageId).toBe(`${body.clientId}:${body.id}`);
    expect(b!.platformMessageId).toBe(a!.platformMessageId);
  });

  it.each([
    ["a path", "../../etc/passwd"],
    ["spaces", "not a uuid at all"],
    ["too long", "a".repeat(65)],
    ["too short", "abc"],
    ["a number", 12345678],
    ["missing", undefined],
  ])("refuses a client id that is %s with 400", async (_label, clientId) => {
    const count = received.length;
    const res = await post("/chat/api/messages", { clientId, id: uuid(), text: "hi" });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatch(/clientId/);
    expect(received.length).toBe(count);
  });

  it("refuses 20,000 characters of text with a clear 400", async () => {
    const res = await post("/chat/api/messages", { clientId: uuid(), id: uuid(), text: "x".repeat(20_000) });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toBe("The message is 20,000 characters; the limit is 16,000.");
  });

  it.each([
    ["missing text", { text: undefined }, /text is required/],
    ["blank text", { text: " \n\t " }, /text is empty/],
    ["a bad message id", { id: "<script>" }, /^id must be/],
  ])("refuses %s with 400", async (_label, patch, error) => {
    const res = await post("/chat/api/messages", { clientId: uuid(), id: uuid(), text: "hi", ...patch });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatch(error);
  });

  it("refuses malformed JSON and non-JSON bodies with 400", async () => {
    const bad = await post("/chat/api/messages", "{not json");
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toMatch(/JSON/);
    const form = await fetch(`${base}/chat/api/messages`, { method: "POST", body: "text=hi" });
    expect(form.status).toBe(400);
  });

  it("refuses a 100 KB body with 413", async () => {
    const res = await post("/chat/api/messages", { clientId: uuid(), id: uuid(), text: "y".repeat(100 * 1024) });
    expect(res.status).toBe(413);
    expect((await res.json()).error).toMatch(/64 KB/);
  });

  it("answers 503 when onMessage rejects, so the page keeps the text and the user retries", async () => {
    const body = { clientId: uuid(), id: uuid(), text: "please keep me" };
    failNext = true;
    const res = await post("/chat/api/messages", body);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ error: "Parley could not store your message; please retry." });
    const retry = await post("/chat/api/messages", body);
    expect(retry.status).toBe(202);
    expect(received.at(-1)!.platformMessageId).toBe(`${body.clientId}:${body.id}`);
  });

  it("answers 503 before start() was called", async () => {
    const res = await post("/idle/api/messages", { clientId: uuid(), id: uuid(), text: "too early" });
    expect(res.status).toBe(503);
    expect((await res.json()).error).toMatch(/not running/);
    expect(idle.adapter.status().state).toBe("stopped");
    expect((await fetch(`${base}/idle/api/events?clientId=${uuid()}`)).status).toBe(503);
  });
});

describe("normalizeWebMessage", () => {
  it.each([
    [null, /JSON object/],
    [[], /JSON object/],
    [{ clientId: "x y", id: "00000000-1", text: "a" }, /clientId/],
    [{ clientId: "00000000-1", id: "00000000-2", text: 5 }, /text is required/],
  ])("refuses %j", (body, error) => {
    const result = normalizeWebMessage(body, NOW);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.error).toMatch(error);
  });
});

// ---- sending replies ----------------------------------------------------------------------------------------------

describe("GET /chat/api/events", () => {
  it("pushes send, draft, typing and edit to the open page of that chat only", async () => {
    const mine = uuid();
    const other = uuid();
    const stream = await openEvents("/chat", mine);
    const elsewhere = await openEvents("/chat", other);
    const chat = chatKey("web", mine);

    await main.adapter.typing!(chat);
    expect(await stream.next()).toEqual({ id: undefined, event: "typing", data: {} });

    await main.adapter.draft!(chat, 7, "Thinking about *it*");
    expect(await stream.next()).toEqual({ id: undefined, event: "draft", data: { draftId: 7, text: "Thinking about *it*" } });

    const { id } = await main.adapter.send(chat, "Here is **the answer**.", { replyTo: `${mine}:abc` });
    const message = await stream.next();
    expect(message).toMatchObject({ event: "message", data: { id, text: "Here is **the answer**.", replyTo: `${mine}:abc` } });
    expect(message.id).toMatch(/^[0-9a-f]+-\d+$/);

    await main.adapter.edit!(chat, id, "Here is **the better answer**.");
    expect(await stream.next()).toMatchObject({ event: "edit", data: { id, text: "Here is **the better answer**." } });

    const second = await main.adapter.send(chat, "And more.");
    expect(second.id).not.toBe(id);
    expect(await stream.next()).toMatchObject({ event: "message", data: { id: second.id, text: "And more." } });

    await elsewhere.expectQuiet(100);
    stream.close();
    elsewhere.close();
  });

  it("buffers what is sent while no page is open, delivers it once, and honours Last-Event-ID", async () => {
    const clientId = uuid();
    const chat = chatKey("web", clientId);
    const first = await main.adapter.send(chat, "finished while you were reloading");
    const second = await main.adapter.send(chat, "part two");
    await main.adapter.draft!(chat, 1, "drafts are not kept");
    await main.adapter.typing!(chat);

    const page = await openEvents("/chat", clientId);
    const a = await page.next();
    const b = await page.next();
    expect(a).toMatchObject({ event: "message", data: { id: first.id, text: "finished while you were reloading" } });
    expect(b).toMatchObject({ event: "message", data: { id: second.id, text: "part two" } });
    await page.expectQuiet();
    page.close();
    await waitForConnections(0);

    // The browser reconnects with the id of the last event it saw: nothing is repeated …
    const again = await openEvents("/chat", clientId, { lastEventId: b.id });
    await again.expectQuiet();
    again.close();
    // … and neither is it for a new page that has no id at all, since it was delivered.
    const fresh = await openEvents("/chat", clientId);
    await fresh.expectQuiet();
    fresh.close();
    await waitForConnections(0);

    // A reply sent while the page was away arrives on the next connection, after the page's stored id (query).
    const third = await main.adapter.send(chat, "while away");
    const back = await openEvents("/chat", clientId, { query: `&lastEventId=${encodeURIComponent(b.id!)}` });
    expect(await back.next()).toMatchObject({ event: "message", data: { id: third.id } });
    await back.expectQuiet();
    back.close();
  });

  it("replays what came after Last-Event-ID even if it was written to a page that went away", async () => {
    const clientId = uuid();
    const chat = chatKey("web", clientId);
    const page = await openEvents("/chat", clientId);
    await main.adapter.send(chat, "one");
    const one = await page.next();
    await main.adapter.send(chat, "two"); // written to the dying page
    page.close();
    const reopened = await openEvents("/chat", clientId, { lastEventId: one.id });
    expect(await reopened.next()).toMatchObject({ data: { text: "two" } });
    await reopened.expectQuiet(100);
    reopened.close();
  });

  it("refuses an invalid client id with 400", async () => {
    const res = await fetch(`${base}/chat/api/events?clientId=${encodeURIComponent("<bad id>")}`);
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatch(/clientId/);
  });
});

describe("web adapter", () => {
  it("declares its limits and refuses what it cannot deliver", async () => {
    expect(main.adapter.name).toBe("web");
    expect(main.adapter.limits).toEqual({ maxText: 8000, canEdit: true, canDraft: true });
    expect(main.adapter.status().state).toBe("running");
    await expect(main.adapter.send(chatKey("telegram", 1), "hi")).rejects.toBeInstanceOf(DeliveryError);
    const tooLong = main.adapter.send(chatKey("web", uuid()), "z".repeat(8001));
    await expect(tooLong).rejects.toMatchObject({ name: "DeliveryError", retryable: false });
  });

  it("stops when the signal aborts: status stopped, open pages closed, API answers 503", async () => {
    await lifecycle.adapter.start(async () => {}, lifecycleStop.signal);
    expect(lifecycle.adapter.status()).toEqual({ state: "running", detail: "0 open pages" });
    const page = await openEvents("/life", uuid());
    lifecycleStop.abort();
    expect(await page.ended()).toBe(true);
    page.close();
    expect(lifecycle.adapter.status().state).toBe("stopped");
    expect((await post("/life/api/messages", { clientId: uuid(), id: uuid(), text: "late" })).status).toBe(503);
    await expect(lifecycle.adapter.send(chatKey("web", uuid()), "late")).rejects.toMatchObject({ retryable: true });
  });
});

describe("event hub", () => {
  function sink() {
    const chunks: string[] = [];
    const s: EventSink & { chunks: string[]; ended: boolean } = {
      chunks,
      ended: false,
      write: (chunk) => void chunks.push(chunk),
      end: () => void (s.ended = true),
    };
    return s;
  }
  const texts = (chunks: string[]) =>
    chunks.map((c) => /^data: (.*)$/m.exec(c)?.[1]).filter(Boolean).map((d) => JSON.parse(d!).text as string);

  it("keeps the last 50 messages of a chat nobody is watching", () => {
    const hub = createEventHub({ now: () => 0 });
    const chat = chatKey("web", uuid());
    for (let i = 1; i <= 60; i++) hub.publish(chat, { type: "message", data: { id: `m${i}`, text: `#${i}` } });
    const page = sink();
    hub.connect(chat, page);
    expect(texts(page.chunks)).toEqual(Array.from({ length: 50 }, (_, i) => `#${i + 11}`));
  });

  it("forgets a chat idle for more than an hour, unless a page is open", () => {
    let now = 0;
    const hub = createEventHub({ now: () => now });
    const quiet = chatKey("web", uuid());
    const watched = chatKey("web", uuid());
    hub.publish(quiet, { type: "message", data: { id: "q", text: "lost after an hour" } });
    const open = sink();
    hub.connect(watched, open);
    now = 61 * 60 * 1000;
    hub.heartbeat();
    expect(open.chunks).toEqual([": ping\n\n"]);
    const late = sink();
    hub.connect(quiet, late);
    expect(late.chunks).toEqual([]);
    hub.publish(watched, { type: "message", data: { id: "w", text: "still here" } });
    expect(texts(open.chunks)).toEqual(["still here"]);
    expect(hub.connectionCount()).toBe(2);
    hub.closeAll();
    expect(open.ended && late.ended).toBe(true);
    expect(hub.connectionCount()).toBe(0);
  });

  it("ignores a Last-Event-ID from another run of the process", () => {
    const hub = createEventHub({ now: () => 0 });
    const chat = chatKey("web", uuid());
    hub.publish(chat, { type: "message", data: { id: "a", text: "undelivered" } });
    const page = sink();
    hub.connect(chat, page, "deadbeef-999");
    expect(texts(page.chunks)).toEqual(["undelivered"]);
  });
});

// ---- images from the page -----------------------------------------------------------------------------------------

/** A few bytes that start like a PNG: the channel stores whatever comes; the conversation checks what it is. */
function pngLike(size = 2048): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size).fill(7);
  bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return bytes;
}

function upload(body: BodyInit, headers: Record<string, string> = { "Content-Type": "image/png" }, path = "/chat") {
  return fetch(`${base}${path}/api/uploads`, { method: "POST", headers, body });
}

/** The names in the uploads folder (finished uploads and partial ones). */
const stored = () => (existsSync(uploadsDir) ? readdirSync(uploadsDir) : []);

describe("POST /chat/api/uploads and messages with an image", () => {
  it("stores an upload on disk under a fresh uuid before answering, and a message names it", async () => {
    const bytes = pngLike();
    const res = await upload(bytes);
    expect(res.status).toBe(201);
    const { ref, size } = (await res.json()) as { ref: string; size: number };
    expect(ref).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(size).toBe(bytes.byteLength);
    const path = join(uploadsDir, ref);
    expect(new Uint8Array(readFileSync(path))).toEqual(bytes);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(stored()).not.toContain(`${ref}.part`);

    const clientId = uuid();
    const id = uuid();
    const sent = await post("/chat/api/messages", { clientId, id, text: "  what is this?  ", image: { ref, mimeType: "Image/PNG", name: "../cat\u0000.png" } });
    expect(sent.status).toBe(202);
    expect(received.at(-1)).toEqual({
      channel: "web",
      platformMessageId: `${clientId}:${id}`,
      chat: `web:${clientId}`,
      user: `web:${clientId}`,
      isGroup: false,
      mentionsBot: false,
      replyToBot: false,
      text: "what is this?",
      attachments: [{ kind: "image", ref, mimeType: "image/png", fileName: "..cat.png", sizeBytes: bytes.byteLength }],
      receivedAt: NOW,
    } satisfies InboundMessage);
  });

  it("takes an image without a caption, and passes an odd type on as no hint at all", async () => {
    const { ref } = (await (await upload(pngLike(), { "Content-Type": "application/octet-stream" })).json()) as { ref: string };
    const res = await post("/chat/api/messages", { clientId: uuid(), id: uuid(), image: { ref, mimeType: "text/html<script>" } });
    expect(res.status).toBe(202);
    expect(received.at(-1)).toMatchObject({ text: "", attachments: [{ kind: "image", ref, sizeBytes: 2048 }] });
    expect(received.at(-1)!.attachments[0]).not.toHaveProperty("mimeType");
  });

  it("reads an upload back through download, within maxBytes only", async () => {
    const bytes = pngLike(5000);
    const { ref } = (await (await upload(bytes)).json()) as { ref: string };
    const signal = new AbortController().signal;
    const back = await main.adapter.download!({ kind: "image", ref }, MB, signal);
    expect(Buffer.from(back).equals(bytes)).toBe(true);
    const over = await main.adapter.download!({ kind: "image", ref }, 4096, signal).catch((e: unknown) => e);
    expect(over).toBeInstanceOf(RefusedInputError);
    expect((over as RefusedInputError).userMessage).toBe("That file is too large for me (5 KB): the limit is 4 KB.");
  });

  it.each([
    ["a path", "../../../etc/passwd"],
    ["an absolute path", "/etc/passwd"],
    ["a uuid with a suffix", `${randomUUID()}/../x`],
    ["an upper-case uuid", randomUUID().toUpperCase()],
    ["a partial upload's name", `${randomUUID()}.part`],
    ["empty", ""],
  ])("download refuses a ref that is %s without touching the disk", async (_label, ref) => {
    const error = await main.adapter.download!({ kind: "image", ref }, MB, new AbortController().signal).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeliveryError);
    expect(error).toMatchObject({ retryable: false, message: "web download: the attachment ref is not a web upload" });
  });

  it("download says an upload is gone when no file has that uuid", async () => {
    const ref = randomUUID();
    const error = await main.adapter.download!({ kind: "image", ref }, MB, new AbortController().signal).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: "DeliveryError", retryable: false, message: `web download: upload ${ref} is gone (uploads are kept for a day)` });
  });

  it("refuses a message whose image ref is malformed or names no upload, and stores nothing", async () => {
    const count = received.length;
    const bad = await post("/chat/api/messages", { clientId: uuid(), id: uuid(), text: "hi", image: { ref: "../../etc/passwd" } });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toMatch(/^image must be \{ ref/);
    const missing = await post("/chat/api/messages", { clientId: uuid(), id: uuid(), text: "hi", image: { ref: randomUUID() } });
    expect(missing.status).toBe(400);
    expect((await missing.json()).error).toBe("The image was not found (uploads are kept for a day); please attach it again.");
    expect(received.length).toBe(count);
  });

  it("cuts off an endless upload at the cap with 413, keeping nothing and reading little", async () => {
    const before = new Set(stored());
    const rss = process.memoryUsage().rss;
    let pulled = 0;
    const chunk = new Uint8Array(64 * 1024).fill(1);
    // 256 MB offered, never declared (chunked): the server has to count.
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (pulled >= 256 * MB) return controller.close();
        pulled += chunk.byteLength;
        controller.enqueue(chunk);
      },
    });
    const res = await fetch(`${base}/chat/api/uploads`, {
      method: "POST",
      headers: { "Content-Type": "image/jpeg" },
      body,
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({ error: "That image is too large: the limit is 1 MB." });
    expect(stored().filter((name) => !before.has(name))).toEqual([]);
    // The server stopped reading: the page could not push more than the cap plus what the sockets buffer.
    expect(pulled).toBeLessThan(64 * MB);
    expect(process.memoryUsage().rss - rss).toBeLessThan(128 * MB);
  });

  it("refuses an upload that declares more than the cap before reading it", async () => {
    const before = new Set(stored());
    const res = await upload(new Blob([new Uint8Array(MAX_UPLOAD + 1)]), { "Content-Type": "image/png" });
    expect(res.status).toBe(413);
    expect((await res.json()).error).toBe("That image is too large: the limit is 1 MB.");
    expect(stored().filter((name) => !before.has(name))).toEqual([]);
    // Exactly the cap is fine.
    expect((await upload(new Uint8Array(MAX_UPLOAD).fill(2))).status).toBe(201);
  });

  it.each([
    ["no Content-Type", {}, 415, /Content-Type/],
    ["a form's Content-Type", { "Content-Type": "application/x-www-form-urlencoded" }, 415, /Content-Type/],
    ["text/plain", { "Content-Type": "text/plain" }, 415, /Content-Type/],
    ["a cross-site request", { "Content-Type": "image/png", "Sec-Fetch-Site": "cross-site" }, 403, /web chat page only/],
    ["another site on this machine", { "Content-Type": "image/png", "Sec-Fetch-Site": "same-site" }, 403, /web chat page only/],
  ])("refuses an upload with %s", async (_label, headers, status, error) => {
    const before = new Set(stored());
    const res = await upload(pngLike(), headers as Record<string, string>);
    expect(res.status).toBe(status);
    expect((await res.json()).error).toMatch(error);
    expect(stored().filter((name) => !before.has(name))).toEqual([]);
  });

  it("refuses an empty upload, and any upload before start()", async () => {
    const empty = await upload(new Uint8Array(0));
    expect(empty.status).toBe(400);
    expect((await empty.json()).error).toBe("The upload is empty: attach an image.");
    const early = await upload(pngLike(), { "Content-Type": "image/png" }, "/idle");
    expect(early.status).toBe(503);
  });

  it("deletes uploads older than a day and partial ones older than an hour at start, and nothing else", async () => {
    const old = (await (await upload(pngLike())).json()) as { ref: string };
    const fresh = (await (await upload(pngLike())).json()) as { ref: string };
    const partial = `${randomUUID()}.part`;
    writeFileSync(join(uploadsDir, partial), "half");
    writeFileSync(join(uploadsDir, "notes.txt"), "not an upload");
    const dayAgo = new Date(Date.now() - 25 * 60 * 60 * 1000);
    const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
    utimesSync(join(uploadsDir, old.ref), dayAgo, dayAgo);
    utimesSync(join(uploadsDir, partial), twoHoursAgo, twoHoursAgo);
    utimesSync(join(uploadsDir, "notes.txt"), dayAgo, dayAgo);

    const sweeper = createWebChannel({ log, dataDir, maxUploadBytes: MAX_UPLOAD });
    const stop = new AbortController();
    await sweeper.adapter.start(async () => {}, stop.signal);
    await vi.waitFor(() => expect(stored()).not.toContain(old.ref), { timeout: 2000, interval: 10 });
    expect(stored()).not.toContain(partial);
    expect(stored()).toContain(fresh.ref);
    expect(stored()).toContain("notes.txt");
    stop.abort();
  });
});

describe("normalizeWebMessage with an image", () => {
  it.each([
    [{ image: "not an object" }, /^image must be/],
    [{ image: { ref: 5 } }, /^image must be/],
    [{ image: [] }, /^image must be/],
    [{ image: undefined, text: undefined }, /text is required/],
    [{ image: { ref: randomUUID() }, text: 5 }, /text is required/],
  ])("refuses %j", (patch, error) => {
    const result = normalizeWebMessage({ clientId: uuid(), id: uuid(), text: "hi", ...patch }, NOW);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.error).toMatch(error);
  });

  it("keeps a long file name to 200 characters", () => {
    const result = normalizeWebMessage({ clientId: uuid(), id: uuid(), image: { ref: randomUUID(), name: `${"é".repeat(300)}.jpg` } }, NOW);
    expect(result.ok && result.message.attachments[0]!.fileName).toBe("é".repeat(200));
  });
});

// ---- files sent to the page ---------------------------------------------------------------------------------------

describe("sendFile and the one-time link", () => {
  const exportFile = () => ({
    name: "parley-export-2025-03-04.jsonl",
    mimeType: "application/x-ndjson",
    bytes: new TextEncoder().encode('{"type":"user"}\n{"type":"message","text":"hi"}\n'),
    caption: "Everything stored about you.",
  });

  it("publishes a file event, and the link serves the file exactly once", async () => {
    const clientId = uuid();
    const chat = chatKey("web", clientId);
    const page = await openEvents("/chat", clientId);
    const file = exportFile();
    const { id } = await main.adapter.sendFile!(chat, file, { replyTo: `${clientId}:x` });
    const event = await page.next();
    expect(event).toMatchObject({
      event: "file",
      data: { id, name: file.name, mimeType: file.mimeType, size: file.bytes.byteLength, caption: file.caption, replyTo: `${clientId}:x` },
    });
    expect(event.id).toMatch(/^[0-9a-f]+-\d+$/);
    const { token } = event.data as { token: string };
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/); // 256 random bits

    // A look first (HEAD) does not use the link up.
    expect((await fetch(`${base}/chat/files/${token}`, { method: "HEAD" })).status).toBe(200);
    const res = await fetch(`${base}/chat/files/${token}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-disposition")).toBe("attachment; filename=parley-export-2025-03-04.jsonl");
    expect(res.headers.get("content-type")).toBe("application/x-ndjson");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(file.bytes);

    const again = await fetch(`${base}/chat/files/${token}`);
    expect(again.status).toBe(404);
    expect(await again.text()).toBe(
      "This download link has already been used or has expired: a link works once, for an hour. Ask Parley to send the file again.",
    );
    expect((await fetch(`${base}/chat/files/${token}`, { method: "HEAD" })).status).toBe(404);
    page.close();
  });

  it("keeps a file event for a page that opens later", async () => {
    const clientId = uuid();
    await main.adapter.sendFile!(chatKey("web", clientId), { name: "notes.txt", mimeType: "text/plain", bytes: new Uint8Array([104, 105]) });
    const page = await openEvents("/chat", clientId);
    expect(await page.next()).toMatchObject({ event: "file", data: { name: "notes.txt", size: 2 } });
    page.close();
  });

  it("names the file safely and never serves it as a page", async () => {
    const clientId = uuid();
    const page = await openEvents("/chat", clientId);
    await main.adapter.sendFile!(chatKey("web", clientId), {
      name: '../../évil"\r\n.html',
      mimeType: "text/html",
      bytes: new TextEncoder().encode("<script>alert(1)</script>"),
    });
    const { token, name } = (await page.next()).data as { token: string; name: string };
    expect(name).toBe("évil___.html");
    const res = await fetch(`${base}/chat/files/${token}`);
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    expect(res.headers.get("content-disposition")).toBe(`attachment; filename="?vil___.html"; filename*=UTF-8''%C3%A9vil___.html`);
    expect(res.headers.get("content-security-policy")).toBe("default-src 'none'; sandbox");
    page.close();
  });

  it("answers 404 to a made-up or malformed token", async () => {
    for (const token of ["A".repeat(43), "short", "%2e%2e%2f%2e%2e%2fetc%2fpasswd"]) {
      const res = await fetch(`${base}/chat/files/${token}`);
      expect(res.status).toBe(404);
      expect(await res.text()).toMatch(/^This download link has already been used or has expired/);
    }
  });

  it("refuses a chat that is not a web chat, and a caption over the limit", async () => {
    await expect(main.adapter.sendFile!(chatKey("telegram", 1), exportFile())).rejects.toMatchObject({ name: "DeliveryError", retryable: false });
    const long = { ...exportFile(), caption: "c".repeat(8001) };
    await expect(main.adapter.sendFile!(chatKey("web", uuid()), long)).rejects.toMatchObject({ name: "DeliveryError", retryable: false });
  });

  it("serves the link on loopback only", async () => {
    const clientId = uuid();
    const page = await openEvents("/chat", clientId);
    await main.adapter.sendFile!(chatKey("web", clientId), exportFile());
    const { token } = (await page.next()).data as { token: string };
    page.close();
    const { port } = server.address() as AddressInfo;
    // Through another host name (DNS rebinding): refused, and the file is still there.
    const rebound = await new Promise<number>((resolve, reject) => {
      httpRequest({ host: "127.0.0.1", port, path: `/chat/files/${token}`, headers: { host: "evil.example" } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on("error", reject)
        .end();
    });
    expect(rebound).toBe(403);
    expect((await fetch(`${base}/chat/files/${token}`, { method: "HEAD" })).status).toBe(200);
    expect((await fetch(`${base}/chat/files/${token}`)).status).toBe(200);
  });

  // A real request from another address of this machine (not 127.0.0.1), where it has one.
  const external = Object.values(networkInterfaces()).flat().find((i) => i && i.family === "IPv4" && !i.internal)?.address;
  it.skipIf(!external)("refuses the file link, uploads and messages to a peer that is not loopback", async () => {
    const app = express();
    app.use("/chat", main.router);
    const outside = app.listen(0, external!);
    await new Promise<void>((resolve, reject) => void outside.once("listening", resolve).once("error", reject));
    const at = `http://${external}:${(outside.address() as AddressInfo).port}/chat`;
    try {
      const clientId = uuid();
      const page = await openEvents("/chat", clientId);
      await main.adapter.sendFile!(chatKey("web", clientId), exportFile());
      const { token } = (await page.next()).data as { token: string };
      page.close();
      const file = await fetch(`${at}/files/${token}`);
      expect(file.status).toBe(403);
      expect(await file.text()).toBe(NOT_LOOPBACK_MESSAGE);
      const before = new Set(stored());
      const up = await fetch(`${at}/api/uploads`, { method: "POST", headers: { "Content-Type": "image/png" }, body: pngLike() });
      expect(up.status).toBe(403);
      expect(stored().filter((name) => !before.has(name))).toEqual([]);
      // The link was not used up by the refused request.
      expect((await fetch(`${base}/chat/files/${token}`)).status).toBe(200);
    } finally {
      outside.closeAllConnections();
      await new Promise<void>((resolve) => outside.close(() => resolve()));
    }
  });
});

describe("file store", () => {
  const file = (size: number, name = "f") => ({ name, mimeType: "application/octet-stream", bytes: new Uint8Array(size) });

  it("hands a file out once, and forgets it after the TTL", () => {
    let now = 0;
    const store = createFileStore({ now: () => now, ttlMs: 1000 });
    const a = store.put(file(10, "a"))!;
    const b = store.put(file(10, "b"))!;
    expect(a).not.toBe(b);
    expect(store.take(a)?.name).toBe("a");
    expect(store.take(a)).toBeUndefined();
    now = 1000;
    expect(store.has(b)).toBe(false);
    expect(store.take(b)).toBeUndefined();
  });

  it("holds at most maxBytes, dropping the oldest, and refuses a file larger than that", () => {
    const store = createFileStore({ now: () => 0, maxBytes: 100 });
    const first = store.put(file(60, "first"))!;
    const second = store.put(file(30, "second"))!;
    const third = store.put(file(40, "third"))!;
    expect(store.has(first)).toBe(false);
    expect(store.has(second) && store.has(third)).toBe(true);
    expect(store.put(file(101))).toBeUndefined();
  });
});

// ---- loopback only ------------------------------------------------------------------------------------------------

describe("loopback guard", () => {
  it.each([
    ["127.0.0.1", true],
    ["127.8.9.10", true],
    ["127.255.255.255", true],
    ["::1", true],
    ["0:0:0:0:0:0:0:1", true],
    ["::ffff:127.0.0.1", true],
    ["::ffff:7f00:1", true],
    ["10.0.0.5", false],
    ["192.168.1.20", false],
    ["128.0.0.1", false],
    ["126.255.255.255", false],
    ["0.0.0.0", false],
    ["::", false],
    ["::ffff:10.0.0.5", false],
    ["fe80::1", false],
    ["2001:db8::1", false],
    ["localhost", false],
    ["", false],
    [undefined, false],
  ])("isLoopbackAddress(%j) is %s", (addr, expected) => {
    expect(isLoopbackAddress(addr)).toBe(expected);
  });

  it.each([
    ["localhost:3000", true],
    ["LOCALHOST", true],
    ["parley.localhost:8080", true],
    ["127.0.0.1:3000", true],
    ["[::1]:3000", true],
    ["evil.example", false],
    ["evil.example:3000", false],
    ["localhost.evil.example", false],
    ["10.0.0.5:3000", false],
    [undefined, false],
  ])("isLoopbackHost(%j) is %s", (host, expected) => {
    expect(isLoopbackHost(host)).toBe(expected);
  });

  function callGuard(remoteAddress: string, headers: Record<string, string>) {
    const answer = { status: 0, body: "", type: "", nextCalled: false };
    const res = {
      status(code: number) {
        answer.status = code;
        return res;
      },
      type(value: string) {
        answer.type = value;
        return res;
      },
      send(body: string) {
        answer.body = body;
        return res;
      },
    };
    const req = { socket: { remoteAddress }, headers };
    const next: NextFunction = () => {
      answer.nextCalled = true;
    };
    requireLoopback(req as unknown as Request, res as unknown as Response, next);
    return answer;
  }

  it("answers 403 with a plain sentence to a non-loopback peer, whatever X-Forwarded-For says", () => {
    const answer = callGuard("10.0.0.5", { host: "localhost:3000", "x-forwarded-for": "127.0.0.1" });
    expect(answer).toEqual({ status: 403, body: NOT_LOOPBACK_MESSAGE, type: "text/plain; charset=utf-8", nextCalled: false });
    expect(NOT_LOOPBACK_MESSAGE).toBe("The web chat only answers on this machine (loopback).");
  });

  it("lets a loopback peer through", () => {
    expect(callGuard("::ffff:127.0.0.1", { host: "localhost:3000" }).nextCalled).toBe(true);
  });

  it("answers 403 to a loopback request naming another host (DNS rebinding)", async () => {
    const { port } = server.address() as AddressInfo;
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host: "127.0.0.1", port, path: "/chat", headers: { host: "evil.example" } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject).end();
    });
    expect(status).toBe(403);
  });
});
