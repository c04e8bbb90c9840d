import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DeliveryError } from "../src/core/errors.ts";
import type { Attachment } from "../src/core/types.ts";
import { openDatabase, type Database } from "../src/db/client.ts";
import { media } from "../src/db/schema.ts";
import { IMAGE_MAX_FRAMES_DEFAULT, IMAGE_MAX_PIXELS_DEFAULT, IMAGE_MAX_SIDE_DEFAULT, MEDIA_MAX_BYTES_DEFAULT } from "../src/media/limits.ts";
import { prepareInbound, turnText, type Download, type MediaConfig } from "../src/media/prepare.ts";
import { loadMedia } from "../src/media/store.ts";
import { VOICE_NOT_ENABLED } from "../src/media/transcribe.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { fakePdf, oggOpusVoice, sidewaysJpeg, solidJpeg, translucentPng } from "./support/images.ts";
import { captureLogs } from "./support/logs.ts";

const MB = 1024 * 1024;

/** A channel's download over a table of files by ref, recording what was fetched and with which cap. */
function fakeChannel(files: Record<string, Uint8Array | Error>) {
  const fetched: Array<{ ref: string; maxBytes: number }> = [];
  const download: Download = async (attachment, maxBytes) => {
    fetched.push({ ref: attachment.ref, maxBytes });
    const file = files[attachment.ref];
    if (file instanceof Error) throw file;
    if (!file) throw new DeliveryError("no such file", false);
    return file;
  };
  return { download, fetched };
}

describe.each(DATABASE_KINDS)("prepareInbound on %s", (kind) => {
  let testDb: TestDatabase;
  let database: Database;
  let server: FakeOpenAIServer;
  let config: MediaConfig;
  const signal = new AbortController().signal;

  beforeAll(async () => {
    testDb = await createTestDatabase(kind);
    database = await openDatabase(testDb.target, captureLogs().log);
    await database.migrate();
    server = await startFakeOpenAIServer();
  });
  beforeEach(async () => {
    await database.db.delete(media);
    config = {
      maxBytes: MEDIA_MAX_BYTES_DEFAULT,
      image: { maxPixels: IMAGE_MAX_PIXELS_DEFAULT, maxSide: IMAGE_MAX_SIDE_DEFAULT, maxFrames: IMAGE_MAX_FRAMES_DEFAULT },
      transcribe: { model: "openai:whisper-1", baseURL: `${server.url}/v1`, apiKey: "test", maxBytes: 20 * MB, maxSeconds: 300, maxRetries: 0 },
    };
  });
  afterAll(async () => {
    await server.close();
    await database.close();
    await testDb.drop();
  });

  it("prepares and stores images, transcribes voice, and refuses the rest with a sentence each", async () => {
    server.replyOnce("whisper-1", { text: "What's in these pictures?" });
    const channel = fakeChannel({
      photo: await sidewaysJpeg(200, 100),
      sticker: await translucentPng(32, 32),
      "photo-as-document": await solidJpeg(50, 40),
      "fake.jpg": fakePdf(),
      voice: oggOpusVoice(7),
    });
    const attachments: Attachment[] = [
      { kind: "image", ref: "photo", mimeType: "image/jpeg" },
      { kind: "file", ref: "report.pdf", mimeType: "application/pdf", fileName: "report.pdf" },
      { kind: "image", ref: "fake.jpg", mimeType: "image/jpeg", fileName: "holiday.jpg" },
      { kind: "audio", ref: "voice", mimeType: "audio/ogg" },
      { kind: "file", ref: "photo-as-document", mimeType: "application/octet-stream", fileName: "IMG_1.jpg" },
      { kind: "file", ref: "clip", mimeType: "video/mp4" },
      { kind: "image", ref: "sticker" },
    ];
    const result = await prepareInbound(attachments, { download: channel.download, db: database.db, config, signal });

    expect(result.images.map((i) => [i.mimeType, i.width, i.height])).toEqual([
      ["image/jpeg", 100, 200],
      ["image/jpeg", 50, 40],
      ["image/png", 32, 32],
    ]);
    expect(result.transcript).toMatchObject({ text: "What's in these pictures?", model: "openai:whisper-1", durationSeconds: 7 });
    expect(result.refusals).toEqual([
      "I can't read files of this kind yet.",
      "That file isn't an image I can read (it looks like a PDF).",
      "I can't watch videos yet: a photo or a voice message works.",
    ]);
    expect(result.retryable).toBe(false);
    // Files the platform already called a PDF or a video are not downloaded at all; voice gets its own cap.
    expect(channel.fetched.map((f) => f.ref)).toEqual(["photo", "fake.jpg", "voice", "photo-as-document", "sticker"]);
    expect(channel.fetched.find((f) => f.ref === "voice")?.maxBytes).toBe(20 * MB);
    expect(channel.fetched.find((f) => f.ref === "photo")?.maxBytes).toBe(MEDIA_MAX_BYTES_DEFAULT);
    const stored = await loadMedia(database.db, result.images.map((i) => i.sha256), { withData: false });
    expect(stored.size).toBe(3);
  });

  it("refuses what the platform declares too large or too long without downloading it", async () => {
    const channel = fakeChannel({});
    const result = await prepareInbound(
      [
        { kind: "image", ref: "huge", sizeBytes: 30 * MB },
        { kind: "audio", ref: "long", mimeType: "audio/ogg", durationSeconds: 3600 } as Attachment,
        { kind: "audio", ref: "big", mimeType: "audio/ogg", sizeBytes: 25 * MB },
      ],
      { download: channel.download, db: database.db, config, signal },
    );
    expect(result.refusals).toEqual([
      "That file is too large for me (30 MB): the limit is 10 MB.",
      "That voice message is too long for me (about 60 min): the limit is 5 min.",
      "That voice message is too large for me (25 MB): the limit is 20 MB.",
    ]);
    expect(channel.fetched).toEqual([]);
  });

  it("refuses voice when transcription is not configured, without downloading it", async () => {
    const channel = fakeChannel({ voice: oggOpusVoice(3) });
    const result = await prepareInbound([{ kind: "audio", ref: "voice" }], {
      download: channel.download,
      db: database.db,
      config: { ...config, transcribe: undefined },
      signal,
    });
    expect(result).toEqual({ images: [], refusals: [VOICE_NOT_ENABLED], retryable: false });
    expect(channel.fetched).toEqual([]);
  });

  it("goes on after a failed download, and says a retry may help", async () => {
    const channel = fakeChannel({ lost: new DeliveryError("HTTP 502", true), ok: await solidJpeg(20, 20) });
    const result = await prepareInbound(
      [
        { kind: "image", ref: "lost" },
        { kind: "image", ref: "ok" },
      ],
      { download: channel.download, db: database.db, config, signal },
    );
    expect(result.refusals).toEqual(["I couldn't download that image: please send it again."]);
    expect(result.images).toHaveLength(1);
    expect(result.retryable).toBe(true);
  });

  it("reports a failed transcription service as retryable", async () => {
    server.replyOnce("whisper-1", { error: { status: 500, message: "boom" } });
    const channel = fakeChannel({ voice: oggOpusVoice(3) });
    const result = await prepareInbound([{ kind: "audio", ref: "voice" }], { download: channel.download, db: database.db, config, signal });
    expect(result.refusals).toEqual(["I couldn't transcribe that voice message just now: please try again, or type it."]);
    expect(result.retryable).toBe(true);
    expect(result.transcript).toBeUndefined();
  });

  it("does not trust an adapter that returns more than the cap", async () => {
    const channel = fakeChannel({ big: new Uint8Array(2048) });
    const result = await prepareInbound([{ kind: "image", ref: "big" }], {
      download: channel.download,
      db: database.db,
      config: { ...config, maxBytes: 1024 },
      signal,
    });
    expect(result.refusals).toEqual(["That file is too large for me (2 KB): the limit is 1 KB."]);
    expect(result.images).toEqual([]);
  });

  it("says so on a channel that cannot download", async () => {
    const result = await prepareInbound([{ kind: "image", ref: "x" }], { download: undefined, db: database.db, config, signal });
    expect(result.refusals).toEqual(["I can't fetch attachments on this channel yet."]);
  });

  it("throws when the job is aborted", async () => {
    const controller = new AbortController();
    const download: Download = async () => {
      controller.abort(new Error("shutting down"));
      throw new DeliveryError("aborted", true);
    };
    await expect(
      prepareInbound([{ kind: "image", ref: "x" }], { download, db: database.db, config, signal: controller.signal }),
    ).rejects.toThrow("shutting down");
  });
});

describe("turnText", () => {
  const transcript = { text: "buy milk", model: "openai:whisper-1", durationSeconds: 12.4, durationSource: "container" as const };
  it.each([
    ["", undefined, ""],
    ["hello", undefined, "hello"],
    ["", transcript, "[voice message, 12 s]: buy milk"],
    [" note ", transcript, "note\n[voice message, 12 s]: buy milk"],
  ] as const)("%j + %j", (text, t, expected) => {
    expect(turnText(text, t)).toBe(expected);
  });
});
