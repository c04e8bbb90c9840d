import { inspect } from "node:util";
import { GrammyError, HttpError } from "grammy";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTelegramChannel } from "../channels/telegram/adapter.ts";
import { toChannelError } from "../channels/telegram/errors.ts";
import { normalizeUpdate } from "../channels/telegram/normalize.ts";
import { DeliveryError, RateLimitedError, RefusedInputError } from "../src/core/errors.ts";
import type { Attachment, ChannelAdapter } from "../src/core/types.ts";
import { startFakeTelegram, type FakeTelegram } from "./fakes/telegram-api.ts";

function captureLog() {
  const lines: string[] = [];
  return { log: pino({ level: "debug" }, { write: (line: string) => void lines.push(line) }), text: () => lines.join("") };
}

let fake: FakeTelegram;
let adapter: ChannelAdapter;
const logs = captureLog();
const signal = new AbortController().signal;

beforeAll(async () => {
  fake = await startFakeTelegram();
  adapter = createTelegramChannel({ token: fake.token, apiRoot: fake.url, log: logs.log }).adapter;
});
afterAll(async () => {
  await fake.close();
  // Every error path below ran through this logger: the token must not be in any line.
  expect(logs.text()).not.toContain(fake.token);
});

const callsTo = (method: string, chatId: number) =>
  fake.sent.filter((c) => c.method === method && Number(c.params.chat_id) === chatId);

describe("send", () => {
  it("converts Markdown to HTML that Telegram accepts, without link previews", async () => {
    const markdown = "**Hi** <there> & [docs](https://example.com)\n```ts\nconst x = 1 < 2;\n```";
    const { id } = await adapter.send("telegram:501", markdown);
    const [call] = callsTo("sendMessage", 501);
    expect(call).toMatchObject({ params: { parse_mode: "HTML", link_preview_options: { is_disabled: true } } });
    expect(call!.errorCode).toBeUndefined();
    expect(fake.messageText(501, Number(id))).toBe("Hi <there> & docs\nconst x = 1 < 2;");
  });

  it("resends as plain text when Telegram cannot parse the entities", async () => {
    fake.failNext("sendMessage", { error_code: 400, description: "Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 3" });
    const { id } = await adapter.send("telegram:502", "**keep** me");
    const calls = callsTo("sendMessage", 502);
    expect(calls.map((c) => [c.params.parse_mode, c.errorCode])).toEqual([["HTML", 400], [undefined, undefined]]);
    expect(calls[1]!.params.text).toBe("**keep** me");
    expect(fake.messageText(502, Number(id))).toBe("**keep** me");
  });

  it("waits out a 429's retry_after and then succeeds", async () => {
    fake.failNext("sendMessage", { error_code: 429, description: "Too Many Requests: retry after 1", retry_after: 1 });
    await expect(adapter.send("telegram:503", "patience")).resolves.toMatchObject({ id: expect.any(String) });
    const [limited, retried] = callsTo("sendMessage", 503);
    expect(limited!.errorCode).toBe(429);
    expect(retried!.errorCode).toBeUndefined();
    expect(retried!.at - limited!.at).toBeGreaterThanOrEqual(950);
  });

  it("gives a long retry_after back as RateLimitedError", async () => {
    fake.failNext("sendMessage", { error_code: 429, description: "Too Many Requests: retry after 120", retry_after: 120 });
    // A bot of its own: after a 429 nothing more is sent by that bot for two minutes.
    const paused = createTelegramChannel({ token: fake.token, apiRoot: fake.url, log: logs.log }).adapter;
    const error = await paused.send("telegram:504", "x").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitedError);
    expect((error as RateLimitedError).retryAfterMs).toBe(120_000);
    const calls = fake.sent.length;
    const again = await paused.send("telegram:504", "y").catch((e: unknown) => e);
    expect(again).toBeInstanceOf(RateLimitedError);
    expect((again as RateLimitedError).retryAfterMs).toBeGreaterThan(110_000);
    expect(fake.sent.length).toBe(calls);
  });

  it("maps a blocked bot to a final DeliveryError", async () => {
    fake.failNext("sendMessage", { error_code: 403, description: "Forbidden: bot was blocked by the user" });
    const error = await adapter.send("telegram:505", "x").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeliveryError);
    expect(error).toMatchObject({ retryable: false, message: expect.stringContaining("bot was blocked by the user") });
  });

  it("posts into a forum topic and replies to the given message", async () => {
    await adapter.send("telegram:-100506:12", "in the topic", { replyTo: "-100506:5" });
    expect(callsTo("sendMessage", -100506)[0]!.params).toMatchObject({
      message_thread_id: 12,
      reply_parameters: { message_id: 5, allow_sending_without_reply: true },
    });
  });

  it("refuses a chat key of another channel", async () => {
    await expect(adapter.send("whatsapp:1", "x")).rejects.toThrow(/not a Telegram chat key/);
  });
});

describe("edit, draft, typing", () => {
  it("edits in place and treats 'message is not modified' as success", async () => {
    // Two chats at once: the throttler spaces calls to one chat a second apart.
    const [same, changed] = await Promise.all([adapter.send("telegram:-100601", "first"), adapter.send("telegram:-100611", "first")]);
    await Promise.all([
      adapter.edit!("telegram:-100601", same.id, "first"),
      adapter.edit!("telegram:-100611", changed.id, "**second**"),
    ]);
    expect(callsTo("editMessageText", -100601).map((c) => c.errorCode)).toEqual([400]);
    expect(callsTo("editMessageText", -100611)[0]!.params).toMatchObject({ text: "<b>second</b>", parse_mode: "HTML" });
    expect(fake.messageText(-100611, Number(changed.id))).toBe("second");
  });

  it("shows drafts in private chats only", async () => {
    await adapter.draft!("telegram:602", 7, "thinking *hard*");
    await adapter.draft!("telegram:-100602", 7, "not in groups");
    expect(callsTo("sendMessageDraft", 602)[0]).toMatchObject({ params: { draft_id: 7, text: "thinking <i>hard</i>", parse_mode: "HTML" } });
    expect(callsTo("sendMessageDraft", -100602)).toHaveLength(0);
  });

  it("sends the typing action", async () => {
    await adapter.typing!("telegram:-100603:4");
    expect(callsTo("sendChatAction", -100603)[0]!.params).toMatchObject({ action: "typing", message_thread_id: 4 });
  });
});

describe("download", () => {
  const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31) % 256);
  const attachmentOf = (file: { file_id: string; file_unique_id: string; file_size?: number }) =>
    normalizeUpdate(fake.updates.photo(file, "look"), fake.bot)!.attachments[0]!;

  it("fetches a file within the cap", async () => {
    const content = bytes(40_000);
    const file = fake.registerFile(content);
    await expect(adapter.download!(attachmentOf(file), 1_000_000, signal)).resolves.toEqual(content);
    expect(fake.downloads).toContain(file.file_path);
  });

  it("refuses a file over the cap before downloading it", async () => {
    const file = fake.registerFile(bytes(5000));
    const attachment: Attachment = { kind: "image", ref: file.file_id }; // size unknown: getFile tells
    const error = await adapter.download!(attachment, 1000, signal).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RefusedInputError);
    expect((error as RefusedInputError).userMessage).toMatch(/too large/);
    await expect(adapter.download!(attachmentOf(file), 1000, signal)).rejects.toBeInstanceOf(RefusedInputError);
    expect(fake.downloads).not.toContain(file.file_path);
  });

  it("refuses files over Telegram's 20 MB bot limit", async () => {
    const file = fake.registerFile(bytes(10), { declaredSize: 25 * 1024 * 1024 });
    const error = await adapter.download!({ kind: "file", ref: file.file_id }, 100 * 1024 * 1024, signal).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RefusedInputError);
    expect((error as RefusedInputError).userMessage).toBe("That file is too large for me: the limit is 20 MB.");
    expect(fake.downloads).not.toContain(file.file_path);
  });

  it("stops reading once more than the cap arrived, whatever size was declared", async () => {
    const file = fake.registerFile(bytes(200_000), { declaredSize: 10, chunked: true });
    const error = await adapter.download!({ kind: "file", ref: file.file_id }, 50_000, signal).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RefusedInputError);
    expect(fake.downloads).toContain(file.file_path);
  });

  it("ends a download that hangs mid-body when the caller aborts, with the caller's reason", async () => {
    let bodyStarted: () => void = () => {};
    const started = new Promise<void>((resolve) => (bodyStarted = resolve));
    const hangingFetch: typeof fetch = async (input, init) => {
      const url = String(input instanceof Request ? input.url : input);
      if (!url.includes("/file/")) return fetch(input, init);
      let sent = false;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (!sent) controller.enqueue(new Uint8Array(10));
          sent = true;
          bodyStarted();
          return new Promise(() => {}); // never another chunk, never the end
        },
      });
      return new Response(body, { status: 200 });
    };
    const hanging = createTelegramChannel({ token: fake.token, apiRoot: fake.url, log: logs.log, fetch: hangingFetch }).adapter;
    const file = fake.registerFile(bytes(100));
    const controller = new AbortController();
    const reading = hanging.download!({ kind: "file", ref: file.file_id }, 1000, controller.signal);
    await started;
    controller.abort(new Error("job cancelled"));
    await expect(reading).rejects.toThrow("job cancelled");
  });

  it("never puts the token in an error, even when the fetch error quotes the file URL", async () => {
    const local = captureLog();
    const leakyFetch: typeof fetch = async (input, init) => {
      const url = String(input instanceof Request ? input.url : input);
      if (url.includes("/file/")) throw new TypeError(`request to ${url} failed, reason: socket hang up`);
      return fetch(input, init);
    };
    const leaky = createTelegramChannel({ token: fake.token, apiRoot: fake.url, log: local.log, fetch: leakyFetch }).adapter;
    const file = fake.registerFile(bytes(100));
    const errors = [
      await leaky.download!({ kind: "file", ref: file.file_id }, 1000, signal).catch((e: unknown) => e),
      await leaky.download!({ kind: "file", ref: "no-such-file" }, 1000, signal).catch((e: unknown) => e),
    ];
    expect(errors[0]).toMatchObject({ name: "DeliveryError", retryable: true, message: expect.stringContaining("/file/bot<token>/") });
    expect(errors[1]).toMatchObject({ name: "DeliveryError", retryable: false, message: expect.stringContaining("invalid file_id") });
    for (const error of errors) expect(inspect(error, { depth: 10 })).not.toContain(fake.token);
    expect(local.text()).not.toContain(fake.token);
  });
});

describe("errors", () => {
  it("keeps the token out of network errors when Telegram cannot be reached", async () => {
    const gone = await startFakeTelegram({ token: fake.token });
    await gone.close();
    const local = captureLog();
    const offline = createTelegramChannel({ token: fake.token, apiRoot: gone.url, log: local.log }).adapter;
    const error = await offline.send("telegram:701", "hello").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeliveryError);
    expect((error as DeliveryError).retryable).toBe(true);
    expect(inspect(error, { depth: 10 })).not.toContain(fake.token);
    expect(local.text()).not.toContain(fake.token);
  });

  const grammyError = (error_code: number, description: string, retry_after?: number) =>
    new GrammyError("Call to 'sendMessage' failed!", { ok: false, error_code, description, ...(retry_after ? { parameters: { retry_after } } : {}) }, "sendMessage", {});

  it.each([
    ["429", grammyError(429, "Too Many Requests: retry after 7", 7), RateLimitedError, { retryAfterMs: 7000 }],
    ["500", grammyError(500, "Internal Server Error"), DeliveryError, { retryable: true }],
    ["502", grammyError(502, "Bad Gateway"), DeliveryError, { retryable: true }],
    ["403 blocked", grammyError(403, "Forbidden: bot was blocked by the user"), DeliveryError, { retryable: false }],
    ["400", grammyError(400, "Bad Request: chat not found"), DeliveryError, { retryable: false }],
    ["network", new HttpError("Network request for 'sendMessage' failed!", new Error("connect ECONNREFUSED")), DeliveryError, { retryable: true }],
  ] as const)("maps %s", (_name, error, type, fields) => {
    const mapped = toChannelError(error, "123:secret");
    expect(mapped).toBeInstanceOf(type);
    expect(mapped).toMatchObject(fields);
  });

  it("redacts the token from any message", () => {
    const token = "123456:ABCdefGhIJKlmNoPQRsTUVwxyZ0123456789";
    const mapped = toChannelError(new Error(`GET https://api.telegram.org/file/bot${token}/photos/a.jpg failed`), token);
    expect(mapped.message).not.toContain(token);
    expect(mapped.message).toContain("/file/bot<token>/photos/a.jpg");
  });
});
