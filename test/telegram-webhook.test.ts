import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createTelegramChannel } from "../channels/telegram/adapter.ts";
import type { InboundMessage, OnMessage } from "../src/core/types.ts";
import { startFakeTelegram, type FakeTelegram } from "./fakes/telegram-api.ts";

const SECRET = "s3cret_Webhook-token";
const HOOK_URL = "https://parley.example/webhooks/telegram";

let fake: FakeTelegram;
let server: Server | undefined;
const stops: AbortController[] = [];

beforeEach(async () => {
  fake = await startFakeTelegram();
});
afterEach(async () => {
  for (const c of stops.splice(0)) c.abort();
  if (server) await new Promise((resolve) => server!.close(resolve));
  server = undefined;
  await fake.close();
});

/** A Telegram channel in webhook mode, mounted on a real express server on 127.0.0.1. */
async function startWebhook(onMessage: OnMessage, opts: { jsonParser?: boolean; start?: boolean } = {}) {
  const lines: string[] = [];
  const log = pino({ level: "debug" }, { write: (line: string) => void lines.push(line) });
  const { adapter, webhookHandler } = createTelegramChannel({
    token: fake.token, apiRoot: fake.url, log, webhook: { url: HOOK_URL, secret: SECRET },
  });
  const app = express();
  if (opts.jsonParser) app.use(express.json());
  app.post("/webhooks/telegram", webhookHandler!);
  server = createServer(app);
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/telegram`;
  const controller = new AbortController();
  stops.push(controller);
  const start = () => adapter.start(onMessage, controller.signal);
  if (opts.start !== false) await start();
  /** `secret: null` sends no secret header. */
  const post = (body: unknown, secret: string | null = SECRET) =>
    fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...(secret === null ? {} : { "x-telegram-bot-api-secret-token": secret }) },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  return { adapter, post, start, stop: () => controller.abort(), logs: () => lines.join("") };
}

describe("webhook mode", () => {
  it("sets the webhook with its secret and delivers an update with the right secret, answering 200 after onMessage", async () => {
    const received: InboundMessage[] = [];
    let stored = false;
    const { adapter, post } = await startWebhook(async (m) => {
      await new Promise((r) => setTimeout(r, 30));
      stored = true;
      received.push(m);
    });
    expect(adapter.status()).toEqual({ state: "running", detail: "webhook as @ParleyTestBot" });
    expect(fake.webhook()).toEqual({ url: HOOK_URL, secret_token: SECRET });
    const response = await post({ ...fake.updates.privateText("via webhook", { userId: 77 }), update_id: 5000 });
    expect(response.status).toBe(200);
    expect(stored).toBe(true);
    expect(received.map((m) => [m.chat, m.text])).toEqual([["telegram:77", "via webhook"]]);
  });

  it.each([
    ["missing", null],
    ["wrong", "s3cret_Webhook-tokeX"],
    ["wrong case", SECRET.toUpperCase()],
    ["longer", `${SECRET}x`],
  ])("refuses a %s secret with 401 and does not call onMessage", async (_name, secret) => {
    let calls = 0;
    const { post, logs } = await startWebhook(async () => void calls++);
    const response = await post({ ...fake.updates.privateText("forged"), update_id: 1 }, secret);
    expect(response.status).toBe(401);
    expect(calls).toBe(0);
    expect(logs()).toContain("without the right secret refused");
    expect(logs()).not.toContain(SECRET);
  });

  it("answers 500 when onMessage rejects, so Telegram delivers again", async () => {
    let attempts = 0;
    const { post } = await startWebhook(async () => {
      if (++attempts === 1) throw new Error("database unavailable");
    });
    const update = { ...fake.updates.privateText("retry me"), update_id: 10 };
    expect((await post(update)).status).toBe(500);
    expect((await post(update)).status).toBe(200);
    expect(attempts).toBe(2);
  });

  it("answers 413 to a body over 1 MB without calling onMessage", async () => {
    let calls = 0;
    const { post } = await startWebhook(async () => void calls++);
    const huge = JSON.stringify({ ...fake.updates.privateText("x".repeat(2 * 1024 * 1024)), update_id: 11 });
    const response = await post(huge);
    expect(response.status).toBe(413);
    expect(calls).toBe(0);
  });

  it("works behind express.json() too", async () => {
    const received: string[] = [];
    const { post } = await startWebhook(async (m) => void received.push(m.text), { jsonParser: true });
    expect((await post({ ...fake.updates.privateText("parsed already"), update_id: 12 })).status).toBe(200);
    expect(received).toEqual(["parsed already"]);
  });

  it("answers 400 to a body that is not an update and 200 to updates it ignores", async () => {
    let calls = 0;
    const { post } = await startWebhook(async () => void calls++);
    expect((await post("{not json")).status).toBe(400);
    expect((await post({ hello: "world" })).status).toBe(400);
    expect((await post({ update_id: 13, my_chat_member: { chat: { id: 5, type: "private" } } })).status).toBe(200);
    expect(calls).toBe(0);
  });

  it("answers 503 before start and after stop", async () => {
    let calls = 0;
    const { adapter, post, start, stop } = await startWebhook(async () => void calls++, { start: false });
    expect((await post({ ...fake.updates.privateText("too early"), update_id: 14 })).status).toBe(503);
    await start();
    expect((await post({ ...fake.updates.privateText("in time"), update_id: 15 })).status).toBe(200);
    stop();
    await new Promise((r) => setTimeout(r, 10));
    expect(adapter.status()).toEqual({ state: "stopped" });
    expect((await post({ ...fake.updates.privateText("too late"), update_id: 16 })).status).toBe(503);
    expect(calls).toBe(1);
  });

  it("refuses webhook mode without a valid secret at construction", () => {
    const log = pino({ level: "silent" });
    const make = (secret: string) => () =>
      createTelegramChannel({ token: fake.token, apiRoot: fake.url, log, webhook: { url: HOOK_URL, secret } });
    expect(make("")).toThrow(/needs a secret/);
    expect(make("has spaces!")).toThrow(/1-256 characters/);
  });
});
