import sharp from "sharp";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { media, messages } from "../src/db/schema.ts";
import { type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { type FakeTelegram } from "./fakes/telegram-api.ts";
import { DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { fakePdf, imagesOf, oggOpusVoice, sidewaysJpeg, solidJpeg } from "./support/images.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";
import { closeScene, openScene } from "./support/scene.ts";

const waitFor = <T>(check: () => T | Promise<T>) => vi.waitFor(check, { timeout: 10_000, interval: 25 });

describe.each(DATABASE_KINDS)("images and voice through Telegram on %s", (kind) => {
  let db: TestDatabase;
  let telegram: FakeTelegram;
  let model: FakeOpenAIServer;
  let parley: TestParley | undefined;

  beforeEach(async () => {
    ({ db, telegram, model } = await openScene(kind));
  });
  afterEach(async () => {
    await parley?.stop();
    parley = undefined;
    await closeScene({ db, telegram, model });
  });

  const start = (extra: Record<string, string> = {}) =>
    startTestParley(db, {
      TELEGRAM_BOT_TOKEN: telegram.token,
      TELEGRAM_API_ROOT: telegram.url,
      MODELS_INSTANT: "openai-compatible:vision-model",
      MODEL_CAPABILITIES: "openai-compatible:vision-model=images",
      OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`,
      OPENAI_BASE_URL: `${model.url}/v1`,
      ACCESS_POLICY: "open",
      ...extra,
    }).then((p) => (parley = p));
  const replies = (chatId: number) =>
    telegram.sent.filter((c) => c.method === "sendMessage" && c.params.chat_id === chatId).map((c) => String(c.params.text));

  it("sends a photo to the model upright, resized and without metadata, with its caption, stored once", async () => {
    await start();
    const photo = telegram.registerFile(await sidewaysJpeg(2400, 1200));
    telegram.pushUpdate(telegram.updates.photo(photo, "what is this?", { userId: 301 }));
    await waitFor(() => expect(replies(301)).toHaveLength(1));
    const request = model.requestsFor("vision-model")[0];
    const [image] = imagesOf(request);
    const meta = await sharp(image!).metadata();
    // EXIF orientation 6 on a 2400×1200 file: upright it is 1200 wide and 2400 high, scaled to 1568 on its long side.
    expect([meta.width, meta.height]).toEqual([784, 1568]);
    expect(meta.exif).toBeUndefined();
    expect(request?.lastUserText).toBe("what is this?");
    const stored = await parley!.database.db.select().from(messages);
    expect(stored[0]?.media).toHaveLength(1);
    expect(await parley!.database.db.select({ sha: media.sha256 }).from(media)).toHaveLength(1);
  });

  it("keeps the image for a follow-up question, and answers a caption-less image", async () => {
    await start();
    const photo = telegram.registerFile(await solidJpeg(300, 200));
    telegram.pushUpdate(telegram.updates.photo(photo, undefined, { userId: 302 }));
    await waitFor(() => expect(replies(302)).toHaveLength(1));
    expect(JSON.stringify(model.requestsFor("vision-model")[0]?.body)).toContain("Describe or respond to this image.");
    telegram.pushUpdate(telegram.updates.privateText("and what colour was it?", { userId: 302 }));
    await waitFor(() => expect(replies(302)).toHaveLength(2));
    expect(imagesOf(model.requestsFor("vision-model")[1])).toHaveLength(1);
  });

  it("answers an album of three photos as one turn with all three images", async () => {
    await start();
    const files = await Promise.all([solidJpeg(120, 80), solidJpeg(90, 90), solidJpeg(60, 100)]);
    files.forEach((bytes, i) => {
      const file = telegram.registerFile(bytes);
      telegram.pushUpdate(
        telegram.updates.raw(
          {
            media_group_id: "album-1",
            photo: [{ ...file, width: 120, height: 80 }],
            ...(i === 0 ? { caption: "our trip" } : {}),
          },
          { userId: 307 },
        ),
      );
    });
    await waitFor(() => expect(replies(307)).toHaveLength(1));
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(replies(307)).toHaveLength(1);
    const requests = model.requestsFor("vision-model");
    expect(requests).toHaveLength(1);
    expect(imagesOf(requests[0])).toHaveLength(3);
    expect(requests[0]?.lastUserText).toBe("our trip");
    expect((await parley!.database.db.select().from(messages)).filter((m) => m.role === "user")[0]?.media).toHaveLength(3);
  });

  it("refuses a file that claims to be a JPEG but is a PDF, saying why, and calls no model", async () => {
    await start();
    const pdf = telegram.registerFile(fakePdf(), { name: "holiday.jpg" });
    telegram.pushUpdate(telegram.updates.document({ ...pdf, mime_type: "image/jpeg", file_name: "holiday.jpg" }, undefined, { userId: 303 }));
    await waitFor(() => expect(replies(303)).toHaveLength(1));
    expect(replies(303)[0]).toMatch(/PDF/);
    expect(model.requests).toHaveLength(0);
  });

  it("tells the user when no configured model can see images", async () => {
    await start({ MODEL_CAPABILITIES: "openai-compatible:vision-model=text" });
    const photo = telegram.registerFile(await solidJpeg(100, 100));
    telegram.pushUpdate(telegram.updates.photo(photo, "look", { userId: 304 }));
    await waitFor(() => expect(replies(304)).toHaveLength(1));
    expect(replies(304)[0]).toMatch(/image/i);
    expect(model.requestsFor("vision-model")).toHaveLength(0);
  });

  it("transcribes a voice note and answers the transcript", async () => {
    await start({ TRANSCRIBE_MODEL: "openai:whisper-1", TRANSCRIBE_BASE_URL: `${model.url}/v1`, TRANSCRIBE_API_KEY: "sk-transcribe-test-key" });
    model.reply("whisper-1", { text: "what is the capital of France" });
    const voice = telegram.registerFile(oggOpusVoice(3), { name: "voice.ogg" });
    telegram.pushUpdate(telegram.updates.voice(voice, { userId: 305 }));
    await waitFor(() => expect(replies(305)).toHaveLength(1));
    expect(model.requestsFor("whisper-1")).toHaveLength(1);
    expect(model.requestsFor("vision-model")[0]?.lastUserText).toMatch(/\[voice message, .*\]: what is the capital of France/);
    const [userTurn] = await parley!.database.db.select().from(messages);
    expect(userTurn?.text).toContain("what is the capital of France");
  });

  it("says how to enable voice when no transcription is configured", async () => {
    await start();
    const voice = telegram.registerFile(oggOpusVoice(2), { name: "voice.ogg" });
    telegram.pushUpdate(telegram.updates.voice(voice, { userId: 306 }));
    await waitFor(() => expect(replies(306)).toHaveLength(1));
    expect(replies(306)[0]).toContain("TRANSCRIBE_MODEL");
    expect(model.requests).toHaveLength(0);
  });
});
