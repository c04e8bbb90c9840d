import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { inbox } from "../src/db/schema.ts";
import { FORWARDED_MARK } from "../src/privacy/untrusted.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { BOT_WID, fakeClientFactory, waMessage, type FakeClientFactory, type FakeWhatsAppClient } from "./fakes/whatsapp-web-client.ts";
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { imagesOf, sidewaysJpeg } from "./support/images.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";

/**
 * Images and other media through the whole of Parley on the whatsapp-web.js channel: the fake client delivers a
 * message the way the library does (media downloaded as base64 through `downloadMedia()`), the real adapter, inbox,
 * media pipeline and model router run, and the fake OpenAI-compatible server sees what the model would see.
 */

const PERSON = "4915112345678@c.us";
const GROUP = "120363025246125888@g.us";
const MEMBER = "4917687654321@c.us";
const waitFor = <T>(check: () => T | Promise<T>) => vi.waitFor(check, { timeout: 15_000, interval: 25 });

/** A media message as whatsapp-web.js delivers it: the declared type and size, the bytes behind `downloadMedia()`. */
function mediaMessage(spec: { chat: string; author?: string; type: string; mimetype: string; bytes: Buffer; body?: string; mentionedIds?: string[] }) {
  return waMessage({
    chat: spec.chat,
    ...(spec.author ? { author: spec.author } : {}),
    type: spec.type,
    body: spec.body ?? "",
    mimetype: spec.mimetype,
    size: spec.bytes.byteLength,
    ...(spec.mentionedIds ? { mentionedIds: spec.mentionedIds } : {}),
    media: { mimetype: spec.mimetype, data: spec.bytes.toString("base64"), filesize: spec.bytes.byteLength },
  });
}

describe.each(DATABASE_KINDS)("media through WhatsApp Web (whatsapp-web.js) on %s", (kind) => {
  let db: TestDatabase;
  let model: FakeOpenAIServer;
  let factory: FakeClientFactory;
  let dataDir: string;
  let parley: TestParley | undefined;
  let client: FakeWhatsAppClient;

  beforeEach(async () => {
    db = await createTestDatabase(kind);
    model = await startFakeOpenAIServer();
    factory = fakeClientFactory();
    dataDir = await mkdtemp(join(tmpdir(), "parley-wa-e2e-"));
    parley = await startTestParley(
      db,
      {
        // PGlite keeps its files in the data dir; with PostgreSQL the WhatsApp session gets a directory of its own.
        PARLEY_DATA_DIR: db.env.PARLEY_DATA_DIR ?? dataDir,
        WHATSAPP_WEB: "true",
        MODELS_INSTANT: "openai-compatible:vision-model",
        MODEL_CAPABILITIES: "openai-compatible:vision-model=images",
        OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`,
        ACCESS_POLICY: "open",
        GROUP_POLICY: "open",
      },
      { createWhatsAppClient: factory.create },
    );
    expect(factory.clients).toHaveLength(1);
    client = factory.latest();
    client.connect();
    await waitFor(() => expect(parley!.adapters.get("whatsapp")?.status()).toEqual({ state: "running", detail: `connected as ${BOT_WID}` }));
  });
  afterEach(async () => {
    await parley?.stop();
    parley = undefined;
    await model.close();
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  const sentTo = (chat: string) => client.sent.filter((s) => s.chatId === chat).map((s) => s.text);

  it("sends a photo with a caption to the model upright, within 1568 px and without EXIF, and replies in the chat", async () => {
    const photo = await sidewaysJpeg(2400, 1200);
    client.receive(mediaMessage({ chat: PERSON, type: "image", mimetype: "image/jpeg", bytes: photo, body: "what is this?" }));
    await waitFor(() => expect(sentTo(PERSON)).toEqual(["echo: what is this?"]));

    const requests = model.requestsFor("vision-model");
    expect(requests).toHaveLength(1);
    expect(requests[0]?.lastUserText).toBe("what is this?");
    const [image, more] = imagesOf(requests[0]);
    expect(more).toBeUndefined();
    const meta = await sharp(image!).metadata();
    // Stored 2400×1200 with EXIF orientation 6: upright it is 1200 wide and 2400 high, scaled to 1568 on its long side.
    expect([meta.width, meta.height]).toEqual([784, 1568]);
    expect(meta.exif).toBeUndefined();
    expect(meta.orientation).toBeUndefined();
    // Upright means the red half (the left of the stored pixels) is on top.
    const pixel = async (top: number) =>
      [...(await sharp(image!).extract({ left: 392, top, width: 1, height: 1 }).raw().toBuffer())].slice(0, 3);
    const [r1, g1, b1] = await pixel(100);
    const [r2, g2, b2] = await pixel(1468);
    expect(r1! > 200 && g1! < 60 && b1! < 60).toBe(true);
    expect(r2! < 60 && g2! < 60 && b2! > 200).toBe(true);
    expect(JSON.stringify(requests[0]?.body)).not.toContain("CanaryCam");
  });

  it("says it cannot watch a video, without calling a model, also when it has a caption (which is about the video)", async () => {
    const video = Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from("ftypmp42"), Buffer.alloc(64)]);
    client.receive(mediaMessage({ chat: PERSON, type: "video", mimetype: "video/mp4", bytes: video }));
    await waitFor(() => expect(sentTo(PERSON)).toEqual(["I can't watch videos yet: a photo or a voice message works."]));
    expect(model.requests).toHaveLength(0);

    client.receive(mediaMessage({ chat: PERSON, type: "video", mimetype: "video/mp4", bytes: video, body: "is this a cat?" }));
    await waitFor(async () => {
      const rows = await parley!.database.db.select({ state: inbox.state }).from(inbox);
      expect(rows.map((r) => r.state)).toEqual(["done", "done"]);
    });
    expect(sentTo(PERSON)).toEqual(Array(2).fill("I can't watch videos yet: a photo or a voice message works."));
    expect(model.requests).toHaveLength(0);
  });

  it("in a group, ignores a video not addressed to the bot and answers one that mentions it, quoting it", async () => {
    const video = Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from("ftypmp42"), Buffer.alloc(64)]);
    const unaddressed = mediaMessage({ chat: GROUP, author: MEMBER, type: "video", mimetype: "video/mp4", bytes: video });
    client.receive(unaddressed);
    await waitFor(async () => {
      const rows = await parley!.database.db.select({ state: inbox.state, error: inbox.error }).from(inbox);
      expect(rows).toEqual([{ state: "ignored", error: "group message not addressed to the bot" }]);
    });

    const addressed = mediaMessage({
      chat: GROUP, author: MEMBER, type: "video", mimetype: "video/mp4", bytes: video, body: "@15550001111", mentionedIds: [BOT_WID],
    });
    client.receive(addressed);
    await waitFor(() => expect(client.sent).toHaveLength(1));
    expect(client.sent[0]).toEqual({
      chatId: GROUP,
      text: "I can't watch videos yet: a photo or a voice message works.",
      options: { quotedMessageId: addressed.id._serialized },
    });
    expect(model.requests).toHaveLength(0);
  });

  it("answers a sticker with what it can use, without a model call, and marks a forwarded text as someone else's words", async () => {
    const sticker = await sharp({ create: { width: 64, height: 64, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).webp().toBuffer();
    client.receive(mediaMessage({ chat: PERSON, type: "sticker", mimetype: "image/webp", bytes: sticker }));
    client.receive(waMessage({ chat: PERSON, body: "/forget confirm", isForwarded: true }));
    await waitFor(() => expect(sentTo(PERSON)).toHaveLength(2));
    // The forwarded text reached the model as content, not as the /forget command.
    expect([...sentTo(PERSON)].sort()).toEqual([
      "I can't use stickers yet. Write to me, or send a photo or a voice message.",
      `echo: ${FORWARDED_MARK}\n/forget confirm`,
    ]);
    expect(model.requests).toHaveLength(1);
    const rows = await parley!.database.db.select({ payload: inbox.payload }).from(inbox);
    expect(rows.map((r) => r.payload)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ unsupported: "stickers", attachments: [] }),
        expect.objectContaining({ text: "/forget confirm", forwarded: true }),
      ]),
    );
  });
});
