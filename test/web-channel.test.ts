import { request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import express, { type NextFunction, type Request, type Response } from "express";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWebChannel } from "../channels/web/adapter.ts";
import { createEventHub, type EventSink } from "../channels/web/event-hub.ts";
import { isLoopbackAddress, isLoopbackHost, NOT_LOOPBACK_MESSAGE, requireLoopback } from "../channels/web/loopback.ts";
import { normalizeWebMessage } from "../channels/web/normalize.ts";
import { DeliveryError } from "../src/core/errors.ts";
import { chatKey } from "../src/core/keys.ts";
import type { InboundMessage } from "../src/core/types.ts";

const NOW = new Date("2025-03-04T05:06:07.000Z");
const CSP =
  "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";
const log = pino({ level: "silent" });

const main = createWebChannel({ log, clock: () => NOW });
const idle = createWebChannel({ log }); // never started
const lifecycle = createWebChannel({ log }); // started and stopped by one test
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
