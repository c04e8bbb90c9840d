import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { messages } from "../src/db/schema.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { fakePdf, imagesOf, sidewaysJpeg } from "./support/images.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";
import { openWebChat, tokenOf, type WebChatClient } from "./support/web-chat.ts";

/** Images sent from the web chat page, through the whole Parley: upload over HTTP, the inbox, media, the model. */

interface ChatEvent {
  event: string;
  data: { text?: string };
}

/** Reads the page's server-sent events until the first `message` (a reply), or fails after a while. */
async function firstReply(body: ReadableStream<Uint8Array>): Promise<ChatEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const timer = setTimeout(() => void reader.cancel(), 15_000);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the event stream ended without a reply");
      buffer += decoder.decode(value, { stream: true });
      for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event === "message" && data) return { event, data: JSON.parse(data) as ChatEvent["data"] };
      }
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
}

describe.each(DATABASE_KINDS)("images from the web chat on %s", (kind) => {
  let db: TestDatabase;
  let model: FakeOpenAIServer;
  let parley: TestParley;
  let dataDir: string;
  let ownDataDir: string | undefined;

  beforeEach(async () => {
    db = await createTestDatabase(kind);
    model = await startFakeOpenAIServer();
    // PGlite lives in the data directory already; with PostgreSQL the uploads get a directory of their own.
    ownDataDir = db.env.PARLEY_DATA_DIR ? undefined : await mkdtemp(path.join(tmpdir(), "parley-web-images-"));
    dataDir = db.env.PARLEY_DATA_DIR ?? ownDataDir!;
    parley = await startTestParley(db, {
      PARLEY_DATA_DIR: dataDir,
      MODELS_INSTANT: "openai-compatible:vision-model",
      MODEL_CAPABILITIES: "openai-compatible:vision-model=images",
      OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`,
    });
  });
  afterEach(async () => {
    await parley.stop();
    await model.close();
    await db.drop();
    if (ownDataDir) await rm(ownDataDir, { recursive: true, force: true });
  });

  /** What the page does: upload the bytes, then send the message naming them; returns the upload's ref. */
  async function sendImage(chat: WebChatClient, bytes: Uint8Array, type: string, name: string, text: string): Promise<string> {
    const up = await chat.upload(bytes, type);
    expect(up.status).toBe(201);
    const { ref } = (await up.json()) as { ref: string };
    // On disk before the message exists: a restart from here on loses nothing.
    expect(existsSync(path.join(dataDir, "web-uploads", ref))).toBe(true);
    const posted = await chat.post({ id: randomUUID(), text, image: { ref, mimeType: type, name } });
    expect(posted.status).toBe(202);
    return ref;
  }

  it("sends an uploaded photo to the model upright, within 1568 px and without EXIF, with its caption", async () => {
    const chat = await openWebChat(parley.url, tokenOf(parley.webChatLink));
    const page = await (await fetch(`${parley.url}/chat`, { headers: { Cookie: chat.cookie } })).text();
    expect(page).toContain(`data-max-upload="${10 * 1024 * 1024}"`); // MEDIA_MAX_BYTES reaches the page
    model.reply("vision-model", { text: "A red and blue picture." });
    const events = await chat.events();
    const reply = firstReply(events.body!);
    await sendImage(chat, await sidewaysJpeg(2400, 1200), "image/jpeg", "photo.jpg", "what is this?");
    expect((await reply).data.text).toBe("A red and blue picture.");

    const request = model.requestsFor("vision-model")[0];
    const images = imagesOf(request);
    expect(images).toHaveLength(1);
    const meta = await sharp(images[0]!).metadata();
    // EXIF orientation 6 on a 2400×1200 file: upright it is 1200×2400, scaled to 1568 on its long side.
    expect([meta.width, meta.height]).toEqual([784, 1568]);
    expect(meta.exif).toBeUndefined();
    expect(images[0]!.includes("canary-exif")).toBe(false);
    expect(request?.lastUserText).toBe("what is this?");
    const [userTurn] = (await parley.database.db.select().from(messages)).filter((m) => m.role === "user");
    expect(userTurn?.media).toHaveLength(1);
  });

  it("refuses a PDF named .jpg with a reply that says what it is, and calls no model", async () => {
    const chat = await openWebChat(parley.url, tokenOf(parley.webChatLink));
    const events = await chat.events();
    const reply = firstReply(events.body!);
    await sendImage(chat, fakePdf(), "image/jpeg", "holiday.jpg", "");
    expect((await reply).data.text).toMatch(/PDF/);
    expect(model.requests).toHaveLength(0);
  });
});
