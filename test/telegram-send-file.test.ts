import { inspect } from "node:util";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTelegramChannel } from "../channels/telegram/adapter.ts";
import { DeliveryError, RateLimitedError } from "../src/core/errors.ts";
import type { ChannelAdapter, OutboundFile } from "../src/core/types.ts";
import { startFakeTelegram, type FakeTelegram, type UploadedFile } from "./fakes/telegram-api.ts";

/**
 * sendFile on the Telegram channel: sendDocument through grammY (a multipart/form-data upload) to the fake Bot API,
 * which reads the multipart body as Telegram does and answers with the Message and its Document.
 */

let fake: FakeTelegram;
let adapter: ChannelAdapter;
const lines: string[] = [];
const log = pino({ level: "debug" }, { write: (line: string) => void lines.push(line) });
const signal = new AbortController().signal;

beforeAll(async () => {
  fake = await startFakeTelegram();
  adapter = createTelegramChannel({ token: fake.token, apiRoot: fake.url, log }).adapter;
});
afterAll(async () => {
  await fake.close();
  expect(lines.join("")).not.toContain(fake.token);
});

const documentCalls = (chatId: number) => fake.sent.filter((c) => c.method === "sendDocument" && Number(c.params.chat_id) === chatId);
/** Every byte value, line breaks and something that looks like a multipart delimiter: all must arrive unchanged. */
const tricky = () =>
  Uint8Array.from([...Array.from({ length: 256 }, (_, i) => i), ...Buffer.from("\r\n--------------fake\r\n\r\n--"), 0, 255]);
const file = (fields: Partial<OutboundFile> = {}): OutboundFile => ({
  name: "parley-export.jsonl", mimeType: "application/x-ndjson", bytes: tricky(), ...fields,
});

describe("sendFile", () => {
  it("uploads the exact bytes under the file's name, with the caption, and answers the message id", async () => {
    const { id } = await adapter.sendFile!("telegram:801", file({ caption: "Your data, as JSON lines." }));
    const [call] = documentCalls(801);
    expect(call!.errorCode).toBeUndefined();
    const upload = call!.params.document as UploadedFile;
    expect(upload.name).toBe("parley-export.jsonl");
    expect(upload.type).toBe("application/octet-stream"); // grammY's part type; Telegram goes by the name
    expect(Buffer.from(upload.bytes).equals(Buffer.from(tricky()))).toBe(true);
    expect(call!.params.caption).toBe("Your data, as JSON lines.");
    expect(call!.params.parse_mode).toBeUndefined();
    // Telegram's answer: the message with its Document; the file can be fetched back, byte for byte.
    const document = fake.documentOf(801, Number(id));
    expect(document).toEqual({
      file_id: expect.any(String), file_unique_id: expect.any(String), file_name: "parley-export.jsonl",
      mime_type: "application/octet-stream", file_size: tricky().length,
    });
    const back = await adapter.download!({ kind: "file", ref: document!.file_id }, 1_000_000, signal);
    expect(Buffer.from(back).equals(Buffer.from(tricky()))).toBe(true);
  });

  it("sends into a forum topic, as a reply, without a caption when there is none", async () => {
    await adapter.sendFile!("telegram:-100802:9", file({ name: "notes.txt", bytes: new TextEncoder().encode("hello") }), { replyTo: "-100802:44" });
    const [call] = documentCalls(-100802);
    expect(call!.errorCode).toBeUndefined();
    expect(call!.params).toMatchObject({
      message_thread_id: 9,
      reply_parameters: { message_id: 44, allow_sending_without_reply: true },
    });
    expect(call!.params).not.toHaveProperty("caption");
    expect((call!.params.document as UploadedFile).name).toBe("notes.txt");
  });

  it("cuts a caption to Telegram's 1024 characters and keeps a numeric one as text", async () => {
    await adapter.sendFile!("telegram:803", file({ caption: "x".repeat(1023) + " and more" }));
    await adapter.sendFile!("telegram:803", file({ caption: "x".repeat(1022) + "😀 and more" })); // the cut would split 😀
    await adapter.sendFile!("telegram:803", file({ caption: "42" }));
    const [long, emoji, numeric] = documentCalls(803);
    expect([long!.errorCode, emoji!.errorCode]).toEqual([undefined, undefined]);
    expect(long!.params.caption).toBe(`${"x".repeat(1023)}…`);
    expect(emoji!.params.caption).toBe(`${"x".repeat(1022)}…`);
    expect(numeric!.params.caption).toBe("42");
  });

  it("keeps a name with spaces and accents, and makes a name safe for the multipart header", async () => {
    await adapter.sendFile!("telegram:804", file({ name: "données de Ada.jsonl" }));
    await adapter.sendFile!("telegram:804", file({ name: 'a";b\r\n.jsonl' }));
    expect(documentCalls(804).map((c) => [(c.params.document as UploadedFile).name, c.errorCode])).toEqual([
      ["données de Ada.jsonl", undefined],
      ["a__b__.jsonl", undefined],
    ]);
  });

  it("maps a blocked bot to a final DeliveryError", async () => {
    fake.failNext("sendDocument", { error_code: 403, description: "Forbidden: bot was blocked by the user" });
    const error = await adapter.sendFile!("telegram:805", file()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeliveryError);
    expect(error).toMatchObject({ retryable: false, message: expect.stringContaining("bot was blocked by the user") });
    expect(documentCalls(805).map((c) => c.errorCode)).toEqual([403]);
  });

  it("waits out a short 429 and uploads the same bytes again", async () => {
    fake.failNext("sendDocument", { error_code: 429, description: "Too Many Requests: retry after 1", retry_after: 1 });
    await adapter.sendFile!("telegram:806", file());
    const [limited, retried] = documentCalls(806);
    expect([limited!.errorCode, retried!.errorCode]).toEqual([429, undefined]);
    expect(retried!.at - limited!.at).toBeGreaterThanOrEqual(950);
    expect(Buffer.from((retried!.params.document as UploadedFile).bytes).equals(Buffer.from(tricky()))).toBe(true);
  });

  it("gives a long 429 back as RateLimitedError", async () => {
    fake.failNext("sendDocument", { error_code: 429, description: "Too Many Requests: retry after 90", retry_after: 90 });
    // A bot of its own: the 429 pauses it for 90 s.
    const paused = createTelegramChannel({ token: fake.token, apiRoot: fake.url, log }).adapter;
    const error = await paused.sendFile!("telegram:807", file()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitedError);
    expect((error as RateLimitedError).retryAfterMs).toBe(90_000);
  });

  it("maps a network failure to a retryable DeliveryError without the token", async () => {
    fake.dropNext("sendDocument");
    const error = await adapter.sendFile!("telegram:808", file()).catch((e: unknown) => e);
    expect(documentCalls(808).map((c) => c.errorCode)).toEqual([0]); // handed back at once: the caller decides
    expect(error).toBeInstanceOf(DeliveryError);
    expect((error as DeliveryError).retryable).toBe(true);
    expect(inspect(error, { depth: 10 })).not.toContain(fake.token);
  });

  it("refuses an empty file (Telegram's 400) and one over 50 MB (before uploading it)", async () => {
    const empty = await adapter.sendFile!("telegram:809", file({ bytes: new Uint8Array(0) })).catch((e: unknown) => e);
    expect(empty).toMatchObject({ name: "DeliveryError", retryable: false, message: expect.stringContaining("file must be non-empty") });
    const huge = await adapter.sendFile!("telegram:809", file({ bytes: new Uint8Array(50 * 1024 * 1024 + 1) })).catch((e: unknown) => e);
    expect(huge).toMatchObject({ name: "DeliveryError", retryable: false, message: expect.stringContaining("50 MB") });
    expect(documentCalls(809)).toHaveLength(1);
  });

  it("refuses a chat key of another channel", async () => {
    await expect(adapter.sendFile!("web:1", file())).rejects.toThrow(/not a Telegram chat key/);
  });
});
