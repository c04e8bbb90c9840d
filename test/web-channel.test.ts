import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import express from "express";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createWebChannel } from "../channels/web/adapter.ts";
import { createEventHub, type EventSink } from "../channels/web/event-hub.ts";
import { createFileStore } from "../channels/web/file-store.ts";
import { normalizeWebMessage } from "../channels/web/normalize.ts";
import { DeliveryError, RefusedInputError } from "../src/core/errors.ts";
import { chatKey } from "../src/core/keys.ts";
import type { ChatKey, InboundMessage, UserKey } from "../src/core/types.ts";

const NOW = new Date("2025-03-04T05:06:07.000Z");
const CSP =
  "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";
const log = pino({ level: "silent" });
const MB = 1024 * 1024;
/** The upload cap of the main channel: small, so the oversize tests stream little. */
const MAX_UPLOAD = 1 * MB;

const dataDir = mkdtempSync(join(tmpdir(), "parley-web-"));
const uploadsDir = join(dataDir, "web-uploads");
const CREDENTIALS = { token: "T".repeat(43), secret: "S".repeat(43) };
/** The channels here are public, so every test can open visitor sessions of its own (limits out of the way). */
const OPEN = { mode: "public", credentials: CREDENTIALS, visitorLimits: { newPerAddressPerHour: 1e6, requestsPerAddressPerMinute: 1e6, requestsPerIdentityPerMinute: 1e6 } } as const;
const main = createWebChannel({ log, clock: () => NOW, dataDir, maxUploadBytes: MAX_UPLOAD, ...OPEN });
const idle = createWebChannel({ log, dataDir, maxUploadBytes: MAX_UPLOAD, ...OPEN }); // never started
const lifecycle = createWebChannel({ log, dataDir, maxUploadBytes: MAX_UPLOAD, ...OPEN }); // started and stopped by one test
/** The operator's chat (WEB_CHAT=operator), and a public one with the real visitor limits. */
const operatorOnly = createWebChannel({ log, dataDir, maxUploadBytes: MAX_UPLOAD, mode: "operator", credentials: CREDENTIALS });
const limited = createWebChannel({ log, dataDir, maxUploadBytes: MAX_UPLOAD, mode: "public", credentials: CREDENTIALS });
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
  app.use("/op", operatorOnly.router);
  app.use("/limited", limited.router);
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
  await operatorOnly.adapter.start(async (message) => void received.push(message), mainStop.signal);
  await limited.adapter.start(async (message) => void received.push(message), mainStop.signal);
  me = await visitor();
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
/** A fresh UUID-shaped message id per call. */
function uuid(): string {
  counter += 1;
  return `00000000-0000-4000-8000-${String(counter).padStart(12, "0")}`;
}

/** A visitor's session (its cookie), and the chat and user key the server derives from it. */
interface Visitor {
  cookie: string;
  /** The platform id: v-<id>. */
  who: string;
  chat: ChatKey;
  user: UserKey;
}

/** A new visitor of the channel at `path`, as the page gets one: POST /api/session without a token. */
async function visitor(path = "/chat"): Promise<Visitor> {
  const res = await fetch(`${base}${path}/api/session`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
  expect(res.status).toBe(200);
  const cookie = res.headers.getSetCookie()[0]!.split(";")[0]!;
  const who = `v-${cookie.split(".")[1]}`;
  return { cookie, who, chat: chatKey("web", who), user: `web:${who}` };
}

let me: Visitor;

function post(path: string, body: unknown, as: Visitor = me): Promise<globalThis.Response> {
  return fetch(`${base}${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Cookie: as.cookie },
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

async function openEvents(path: string, as: Visitor, options: { lastEventId?: string; query?: string } = {}) {
  const controller = new AbortController();
  const headers: Record<string, string> = { Accept: "text/event-stream", Cookie: as.cookie };
  if (options.lastEventId) headers["Last-Event-ID"] = options.lastEventId;
  const res = await fetch(`${base}${path}/api/events${options.query ?? ""}`, {
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
    const id = uuid();
    // A clientId from an older page names nothing: the sender is the session's.
    const res = await post("/chat/api/messages", { clientId: "operator", id, text: "  Hello **Parley**\n  " });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ ok: true });
    expect(received.at(-1)).toEqual({
      channel: "web",
      platformMessageId: `${me.who}:${id}`,
      chat: me.chat,
      user: me.user,
      isGroup: false,
      mentionsBot: false,
      replyToBot: false,
      text: "Hello **Parley**",
      attachments: [],
      receivedAt: NOW,
    } satisfies InboundMessage);
  });

  it("gives a retried POST the same platformMessageId", async () => {
    const body = { id: uuid(), text: "once" };
    expect((await post("/chat/api/messages", body)).status).toBe(202);
    expect((await post("/chat/api/messages", body)).status).toBe(202);
    const [a, b] = received.slice(-2);
    expect(a!.platformMessageId).toBe(`${me.who}:${body.id}`);
    expect(b!.platformMessageId).toBe(a!.platformMessageId);
  });

  it.each([
    ["a path", "../../etc/passwd"],
    ["spaces", "not a uuid at all"],
    ["too long", "a".repeat(65)],
    ["too short", "abc"],
    ["a number", 12345678],
    ["missing", undefined],
  ])("refuses a message id that is %s with 400", async (_label, id) => {
    const count = received.length;
    const res = await post("/chat/api/messages", { id, text: "hi" });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatch(/^id must be/);
    expect(received.length).toBe(count);
  });

  it("answers 401 to a request without a session, or with one this channel did not sign, and stores nothing", async () => {
    const count = received.length;
    const forged = { ...me, cookie: me.cookie.replace(/\.[A-Za-z0-9_-]{43}$/, `.${"A".repeat(43)}`) };
    for (const as of [{ ...me, cookie: "" }, forged]) {
      const res = await post("/chat/api/messages", { id: uuid(), text: "hi" }, as);
      expect(res.status).toBe(401);
      expect((await res.json()).error).toMatch(/^(The web chat needs a session|Your web chat session is not valid)/);
    }
    expect(received.length).toBe(count);
  });

  it("refuses 20,000 characters of text with a clear 400", async () => {
    const res = await post("/chat/api/messages", { id: uuid(), text: "x".repeat(20_000) });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toBe("The message is 20,000 characters; the limit is 16,000.");
  });

  it.each([
    ["missing text", { text: undefined }, /text is required/],
    ["blank text", { text: " \n\t " }, /text is empty/],
    ["a bad message id", { id: "<script>" }, /^id must be/],
  ])("refuses %s with 400", async (_label, patch, error) => {
    const res = await post("/chat/api/messages", { id: uuid(), text: "hi", ...patch });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatch(error);
  });

  it("refuses malformed JSON and non-JSON bodies with 400", async () => {
    const bad = await post("/chat/api/messages", "{not json");
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toMatch(/JSON/);
    const form = await fetch(`${base}/chat/api/messages`, { method: "POST", headers: { Cookie: me.cookie }, body: "text=hi" });
    expect(form.status).toBe(400);
  });

  it("refuses a 100 KB body with 413", async () => {
    const res = await post("/chat/api/messages", { id: uuid(), text: "y".repeat(100 * 1024) });
    expect(res.status).toBe(413);
    expect((await res.json()).error).toMatch(/64 KB/);
  });

  it("answers 503 when onMessage rejects, so the page keeps the text and the user retries", async () => {
    const body = { id: uuid(), text: "please keep me" };
    failNext = true;
    const res = await post("/chat/api/messages", body);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ error: "Parley could not store your message; please retry." });
    const retry = await post("/chat/api/messages", body);
    expect(retry.status).toBe(202);
    expect(received.at(-1)!.platformMessageId).toBe(`${me.who}:${body.id}`);
  });

  it("answers 503 before start() was called", async () => {
    const early = await visitor("/idle");
    const res = await post("/idle/api/messages", { id: uuid(), text: "too early" }, early);
    expect(res.status).toBe(503);
    expect((await res.json()).error).toMatch(/not running/);
    expect(idle.adapter.status().state).toBe("stopped");
    expect((await fetch(`${base}/idle/api/events`, { headers: { Cookie: early.cookie } })).status).toBe(503);
  });
});

describe("normalizeWebMessage", () => {
  it.each([
    [null, /JSON object/],
    [[], /JSON object/],
    [{ id: "x y", text: "a" }, /^id must be/],
    [{ id: "00000000-2", text: 5 }, /text is required/],
  ])("refuses %j", (body, error) => {
    const result = normalizeWebMessage(body, "web:v-0123456789abcdefghijkl", NOW);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.error).toMatch(error);
  });
});

// ---- sending replies ----------------------------------------------------------------------------------------------

describe("GET /chat/api/events", () => {
  it("pushes send, draft, typing and edit to the open page of that chat only", async () => {
    const mine = await visitor();
    const other = await visitor();
    const stream = await openEvents("/chat", mine);
    const elsewhere = await openEvents("/chat", other);
    const chat = mine.chat;

    await main.adapter.typing!(chat);
    expect(await stream.next()).toEqual({ id: undefined, event: "typing", data: {} });

    await main.adapter.draft!(chat, 7, "Thinking about *it*");
    expect(await stream.next()).toEqual({ id: undefined, event: "draft", data: { draftId: 7, text: "Thinking about *it*" } });

    const { id } = await main.adapter.send(chat, "Here is **the answer**.", { replyTo: `${mine.who}:abc` });
    const message = await stream.next();
    expect(message).toMatchObject({ event: "message", data: { id, text: "Here is **the answer**.", replyTo: `${mine.who}:abc` } });
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
    const clientId = await visitor();
    const chat = clientId.chat;
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
    const back = await openEvents("/chat", clientId, { query: `?lastEventId=${encodeURIComponent(b.id!)}` });
    expect(await back.next()).toMatchObject({ event: "message", data: { id: third.id } });
    await back.expectQuiet();
    back.close();
  });

  it("replays what came after Last-Event-ID even if it was written to a page that went away", async () => {
    const clientId = await visitor();
    const chat = clientId.chat;
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

  it("answers 401 without a session, whatever client id the query names", async () => {
    const res = await fetch(`${base}/chat/api/events?clientId=${encodeURIComponent(me.who)}`);
    expect(res.status).toBe(401);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  });
});

describe("web adapter", () => {
  it("declares its limits and refuses what it cannot deliver", async () => {
    expect(main.adapter.name).toBe("web");
    expect(main.adapter.limits).toEqual({ maxText: 8000, canEdit: true, canDraft: true });
    expect(main.adapter.status().state).toBe("running");
    await expect(main.adapter.send(chatKey("telegram", 1), "hi")).rejects.toBeInstanceOf(DeliveryError);
    const tooLong = main.adapter.send(me.chat, "z".repeat(8001));
    await expect(tooLong).rejects.toMatchObject({ name: "DeliveryError", retryable: false });
  });

  it("stops when the signal aborts: status stopped, open pages closed, API answers 503", async () => {
    await lifecycle.adapter.start(async () => {}, lifecycleStop.signal);
    expect(lifecycle.adapter.status()).toEqual({ state: "running", detail: "0 open pages" });
    const life = await visitor("/life");
    const page = await openEvents("/life", life);
    lifecycleStop.abort();
    expect(await page.ended()).toBe(true);
    page.close();
    expect(lifecycle.adapter.status().state).toBe("stopped");
    expect((await post("/life/api/messages", { id: uuid(), text: "late" }, life)).status).toBe(503);
    await expect(lifecycle.adapter.send(me.chat, "late")).rejects.toMatchObject({ retryable: true });
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
  return fetch(`${base}${path}/api/uploads`, { method: "POST", headers: { Cookie: me.cookie, ...headers }, body });
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

    const id = uuid();
    const sent = await post("/chat/api/messages", { id, text: "  what is this?  ", image: { ref, mimeType: "Image/PNG", name: "../cat\u0000.png" } });
    expect(sent.status).toBe(202);
    expect(received.at(-1)).toEqual({
      channel: "web",
      platformMessageId: `${me.who}:${id}`,
      chat: me.chat,
      user: me.user,
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
    const res = await post("/chat/api/messages", { id: uuid(), image: { ref, mimeType: "text/html<script>" } });
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
    const bad = await post("/chat/api/messages", { id: uuid(), text: "hi", image: { ref: "../../etc/passwd" } });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toMatch(/^image must be \{ ref/);
    const missing = await post("/chat/api/messages", { id: uuid(), text: "hi", image: { ref: randomUUID() } });
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
      headers: { "Content-Type": "image/jpeg", Cookie: me.cookie },
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
    const early = await upload(pngLike(), { "Content-Type": "image/png", Cookie: (await visitor("/idle")).cookie }, "/idle");
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

    const sweeper = createWebChannel({ log, dataDir, maxUploadBytes: MAX_UPLOAD, ...OPEN });
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
    const result = normalizeWebMessage({ id: uuid(), text: "hi", ...patch }, me.user, NOW);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.error).toMatch(error);
  });

  it("keeps a long file name to 200 characters", () => {
    const result = normalizeWebMessage({ id: uuid(), image: { ref: randomUUID(), name: `${"é".repeat(300)}.jpg` } }, me.user, NOW);
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
  const getFile = (token: string, as: Visitor, method = "GET") =>
    fetch(`${base}/chat/files/${token}`, { method, headers: as.cookie ? { Cookie: as.cookie } : {} });

  it("publishes a file event, and the link serves the file exactly once", async () => {
    const clientId = await visitor();
    const chat = clientId.chat;
    const page = await openEvents("/chat", clientId);
    const file = exportFile();
    const { id } = await main.adapter.sendFile!(chat, file, { replyTo: `${clientId.who}:x` });
    const event = await page.next();
    expect(event).toMatchObject({
      event: "file",
      data: { id, name: file.name, mimeType: file.mimeType, size: file.bytes.byteLength, caption: file.caption, replyTo: `${clientId.who}:x` },
    });
    expect(event.id).toMatch(/^[0-9a-f]+-\d+$/);
    const { token } = event.data as { token: string };
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/); // 256 random bits

    // A look first (HEAD) does not use the link up.
    expect((await getFile(token, clientId, "HEAD")).status).toBe(200);
    const res = await getFile(token, clientId);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-disposition")).toBe("attachment; filename=parley-export-2025-03-04.jsonl");
    expect(res.headers.get("content-type")).toBe("application/x-ndjson");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(file.bytes);

    const again = await getFile(token, clientId);
    expect(again.status).toBe(404);
    expect(await again.text()).toBe(
      "This download link has already been used or has expired: a link works once, for an hour. Ask Parley to send the file again.",
    );
    expect((await getFile(token, clientId, "HEAD")).status).toBe(404);
    page.close();
  });

  it("keeps a file event for a page that opens later", async () => {
    const clientId = await visitor();
    await main.adapter.sendFile!(clientId.chat, { name: "notes.txt", mimeType: "text/plain", bytes: new Uint8Array([104, 105]) });
    const page = await openEvents("/chat", clientId);
    expect(await page.next()).toMatchObject({ event: "file", data: { name: "notes.txt", size: 2 } });
    page.close();
  });

  it("names the file safely and never serves it as a page", async () => {
    const clientId = await visitor();
    const page = await openEvents("/chat", clientId);
    await main.adapter.sendFile!(clientId.chat, {
      name: '../../évil"\r\n.html',
      mimeType: "text/html",
      bytes: new TextEncoder().encode("<script>alert(1)</script>"),
    });
    const { token, name } = (await page.next()).data as { token: string; name: string };
    expect(name).toBe("évil___.html");
    const res = await getFile(token, clientId);
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    expect(res.headers.get("content-disposition")).toBe(`attachment; filename="?vil___.html"; filename*=UTF-8''%C3%A9vil___.html`);
    expect(res.headers.get("content-security-policy")).toBe("default-src 'none'; sandbox");
    page.close();
  });

  it("answers 404 to a made-up or malformed token", async () => {
    for (const token of ["A".repeat(43), "short", "%2e%2e%2f%2e%2e%2fetc%2fpasswd"]) {
      const res = await getFile(token, me);
      expect(res.status).toBe(404);
      expect(await res.text()).toMatch(/^This download link has already been used or has expired/);
    }
  });

  it("refuses a chat that is not a web chat, a made-up web chat id, and a caption over the limit", async () => {
    await expect(main.adapter.sendFile!(chatKey("telegram", 1), exportFile())).rejects.toMatchObject({ name: "DeliveryError", retryable: false });
    await expect(main.adapter.send(chatKey("web", uuid()), "hi")).rejects.toMatchObject({ name: "DeliveryError", retryable: false });
    const long = { ...exportFile(), caption: "c".repeat(8001) };
    await expect(main.adapter.sendFile!(me.chat, long)).rejects.toMatchObject({ name: "DeliveryError", retryable: false });
  });

  it("serves the link to the session of its own chat only: not without one, not to another visitor", async () => {
    const owner = await visitor();
    const stranger = await visitor();
    const page = await openEvents("/chat", owner);
    await main.adapter.sendFile!(owner.chat, exportFile());
    const { token } = (await page.next()).data as { token: string };
    page.close();
    const anonymous = await getFile(token, { ...owner, cookie: "" });
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toEqual({ error: "The web chat needs a session: open the chat page, which starts one." });
    expect((await getFile(token, stranger, "HEAD")).status).toBe(404);
    expect((await getFile(token, stranger)).status).toBe(404);
    // The refused requests did not use the link up.
    expect((await getFile(token, owner, "HEAD")).status).toBe(200);
    expect((await getFile(token, owner)).status).toBe(200);
  });
});

describe("file store", () => {
  const file = (size: number, name = "f") => ({ name, mimeType: "application/octet-stream", bytes: new Uint8Array(size) });
  const mine = chatKey("web", "operator");
  const theirs = chatKey("web", "v-0123456789abcdefghijkl");

  it("hands a file out once, to its own chat only, and forgets it after the TTL", () => {
    let now = 0;
    const store = createFileStore({ now: () => now, ttlMs: 1000 });
    const a = store.put(file(10, "a"), mine)!;
    const b = store.put(file(10, "b"), mine)!;
    expect(a).not.toBe(b);
    expect(store.has(a, theirs)).toBe(false);
    expect(store.take(a, theirs)).toBeUndefined();
    expect(store.take(a, mine)?.name).toBe("a");
    expect(store.take(a, mine)).toBeUndefined();
    now = 1000;
    expect(store.has(b, mine)).toBe(false);
    expect(store.take(b, mine)).toBeUndefined();
  });

  it("holds at most maxBytes, dropping the oldest, and refuses a file larger than that", () => {
    const store = createFileStore({ now: () => 0, maxBytes: 100 });
    const first = store.put(file(60, "first"), mine)!;
    const second = store.put(file(30, "second"), mine)!;
    const third = store.put(file(40, "third"), mine)!;
    expect(store.has(first, mine)).toBe(false);
    expect(store.has(second, mine) && store.has(third, mine)).toBe(true);
    expect(store.put(file(101), mine)).toBeUndefined();
  });
});

// ---- who may use the chat -----------------------------------------------------------------------------------------

describe("sessions over HTTP", () => {
  const session = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}/api/session`, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify(body) });

  it("shows the operator's chat without a session as a short explanation, with no chat in it", async () => {
    const res = await fetch(`${base}/op`);
    expect(res.status).toBe(401);
    expect(res.headers.get("content-security-policy")).toBe(CSP);
    const html = await res.text();
    expect(html).toContain('data-page="gate"');
    expect(html).toContain("This web chat is the operator's");
    expect(html).toContain('<script src="/op/chat.js" defer></script>');
    expect(html).not.toContain("<textarea");
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
  });

  it("trades the token for an HttpOnly, SameSite=Strict cookie scoped to the chat, Secure only over HTTPS", async () => {
    const res = await session("/op", { token: CREDENTIALS.token });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ identity: "operator" });
    const [cookie] = res.headers.getSetCookie();
    expect(cookie).toMatch(/^parley_chat=o\.\d+\.[A-Za-z0-9_-]{43}; Path=\/op; Max-Age=2592000; HttpOnly; SameSite=Strict$/);
    const value = cookie!.split(";")[0]!;
    const page = await fetch(`${base}/op`, { headers: { Cookie: value } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('data-session="operator"');
    expect(html).toContain("<textarea");
    const id = uuid();
    const posted = await fetch(`${base}/op/api/messages`, { method: "POST", headers: { "Content-Type": "application/json", Cookie: value }, body: JSON.stringify({ clientId: "v-0123456789abcdefghijkl", id, text: "hi" }) });
    expect(posted.status).toBe(202);
    expect(received.at(-1)).toMatchObject({ chat: "web:operator", user: "web:operator", platformMessageId: `operator:${id}` });
  });

  it("refuses a visitor's session, and a new one, while the chat is the operator's", async () => {
    const visiting = await visitor("/limited"); // signed with the same key, by a public chat
    const posted = await fetch(`${base}/op/api/messages`, { method: "POST", headers: { "Content-Type": "application/json", Cookie: visiting.cookie }, body: JSON.stringify({ id: uuid(), text: "hi" }) });
    expect(posted.status).toBe(401);
    const opened = await session("/op", {}, { Cookie: visiting.cookie });
    expect(opened.status).toBe(401);
    expect(opened.headers.getSetCookie()).toEqual([]);
    expect((await fetch(`${base}/op`, { headers: { Cookie: visiting.cookie } })).status).toBe(401);
  });

  it.each([
    ["a session", "/api/session", { "Content-Type": "application/json" }, "{}"],
    ["a message", "/api/messages", { "Content-Type": "application/json" }, "{}"],
    ["an upload", "/api/uploads", { "Content-Type": "image/png" }, "png"],
  ])("refuses %s posted by another site (Sec-Fetch-Site) with 403", async (_label, route, headers, body) => {
    for (const site of ["cross-site", "same-site"]) {
      const res = await fetch(`${base}/chat${route}`, { method: "POST", headers: { ...headers, Cookie: me.cookie, "Sec-Fetch-Site": site }, body });
      expect(res.status).toBe(403);
      expect((await res.json()).error).toBe("Requests come from the web chat page only.");
    }
  });

  it("bounds what one visitor sends a minute, with a sentence and Retry-After", async () => {
    const one = await visitor("/limited");
    const statuses: number[] = [];
    let refused: globalThis.Response | undefined;
    for (let i = 0; i < 25; i++) {
      const res = await post("/limited/api/messages", { id: uuid(), text: `n${i}` }, one);
      statuses.push(res.status);
      if (res.status === 429) refused = res;
    }
    expect(statuses.filter((s) => s === 202)).toHaveLength(20);
    expect(refused?.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(await refused!.json()).toEqual({ error: "Too many messages at once: please wait a minute and send it again." });
    // Another visitor from the same address still gets through (the address allows 60 a minute).
    expect((await post("/limited/api/messages", { id: uuid(), text: "me too" }, await visitor("/limited"))).status).toBe(202);
  });
});
