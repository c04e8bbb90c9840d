import sharp from "sharp";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { media, messages } from "../src/db/schema.ts";
import { deliverWebhook, messengerWebhook, startFakeGraph, whatsappWebhook, type FakeGraph } from "./fakes/graph-api.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { fakePdf, imagesOf, oggOpusVoice, pixelAt, sidewaysJpeg } from "./support/images.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";

/**
 * Images and voice through the two Meta channels, end to end: a signed webhook names the media (a WhatsApp media id
 * looked up with Graph, a Messenger CDN URL), the whole app downloads it through the adapter, prepares it, and the
 * fake model server shows what a provider would get.
 */

const APP_SECRET = "meta-app-secret-for-media-tests";
const waitFor = <T>(check: () => T | Promise<T>) => vi.waitFor(check, { timeout: 10_000, interval: 25 });

/** How a test drives one channel: post a user's image, read the replies that user got, find the bytes served. */
interface MetaChannelDriver {
  name: string;
  webhook: string;
  /** Makes the image available on the fake (an endless one has no length anywhere) and returns the webhook payload. */
  image(graph: FakeGraph, user: string, id: string, file: Uint8Array | "endless", caption?: string): { payload: unknown; servedAt: string };
  replies(graph: FakeGraph, user: string): string[];
}

const whatsapp: MetaChannelDriver = {
  name: "WhatsApp Cloud",
  webhook: "/webhooks/whatsapp",
  image(graph, user, id, file, caption) {
    const mediaId = `77${id.replace(/\D/g, "")}`;
    graph.addMedia(
      file === "endless"
        ? { id: mediaId, mimeType: "image/jpeg", endless: true, declaredSize: null }
        : { id: mediaId, mimeType: "image/jpeg", bytes: file },
    );
    const message = whatsappWebhook.image(user, id, mediaId, caption, nowSeconds());
    return { payload: whatsappWebhook.payload([whatsappWebhook.change(graph.phoneNumberId, { messages: [message] })]), servedAt: `/media/${mediaId}` };
  },
  replies: (graph, user) =>
    graph
      .calls("whatsapp")
      .map((r) => r.body as { to?: string; type?: string; text?: { body: string } })
      .filter((b) => b.type === "text" && b.to === user)
      .map((b) => b.text!.body),
};

const messenger: MetaChannelDriver = {
  name: "Messenger",
  webhook: "/webhooks/messenger",
  image(graph, user, id, file, caption) {
    const name = `${id}.jpg`;
    const url = file === "endless" ? graph.addCdnFile(name, new Uint8Array(), { endless: true }) : graph.addCdnFile(name, file);
    const item = messengerWebhook.attachment(user, id, "image", url, { timestamp: Date.now(), ...(caption === undefined ? {} : { text: caption }) });
    return { payload: messengerWebhook.payload([item]), servedAt: `/cdn/${name}` };
  },
  replies: (graph, user) =>
    graph
      .calls("messenger")
      .map((r) => r.body as { recipient?: { id?: string }; message?: { text?: string } })
      .filter((b) => b.recipient?.id === user && typeof b.message?.text === "string")
      .map((b) => b.message!.text!),
};

const nowSeconds = () => String(Math.floor(Date.now() / 1000));

describe.each(DATABASE_KINDS)("images and voice through WhatsApp Cloud and Messenger on %s", (kind) => {
  let db: TestDatabase;
  let graph: FakeGraph;
  let model: FakeOpenAIServer;
  let parley: TestParley | undefined;

  beforeEach(async () => {
    db = await createTestDatabase(kind);
    [graph, model] = await Promise.all([startFakeGraph(), startFakeOpenAIServer()]);
  });
  afterEach(async () => {
    await parley?.stop();
    parley = undefined;
    await Promise.all([graph.close(), model.close()]);
    await db.drop();
  });

  const start = (extra: Record<string, string> = {}) =>
    startTestParley(db, {
      META_APP_SECRET: APP_SECRET,
      META_VERIFY_TOKEN: "verify-token-for-media-tests",
      META_GRAPH_API_ROOT: graph.root,
      WHATSAPP_CLOUD_TOKEN: graph.token,
      WHATSAPP_CLOUD_PHONE_NUMBER_ID: graph.phoneNumberId,
      MESSENGER_PAGE_TOKEN: graph.token,
      MODELS_INSTANT: "openai-compatible:vision-model",
      MODEL_CAPABILITIES: "openai-compatible:vision-model=images",
      OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`,
      ACCESS_POLICY: "open",
      ...extra,
    }).then((p) => (parley = p));

  const post = async (path: string, payload: unknown) => {
    const response = await deliverWebhook(`${parley!.url}${path}`, payload, APP_SECRET);
    expect(response.status).toBe(200);
  };

  describe.each([whatsapp, messenger])("$name", (channel) => {
    it("sends a photo to the model upright, at most 1568 px, without EXIF, with its caption", async () => {
      await start();
      const user = channel === whatsapp ? "4915100000001" : "7100000000000001";
      const { payload } = channel.image(graph, user, "m_PHOTO1", await sidewaysJpeg(2400, 1200), "what is this?");
      await post(channel.webhook, payload);
      await waitFor(() => expect(channel.replies(graph, user)).toHaveLength(1));

      const [request] = model.requestsFor("vision-model");
      expect(request?.lastUserText).toBe("what is this?");
      const images = imagesOf(request);
      expect(images).toHaveLength(1);
      const image = images[0]!;
      const meta = await sharp(image).metadata();
      // Orientation 6 on a 2400×1200 file: upright it is 1200 wide and 2400 high, scaled to 1568 on its long side.
      expect([meta.width, meta.height]).toEqual([784, 1568]);
      expect(meta.exif).toBeUndefined();
      expect(meta.orientation ?? 1).toBe(1);
      expect(image.includes(Buffer.from("CanaryCam"))).toBe(false);
      // The file's left half (red) is the top once turned upright, its right half (blue) the bottom.
      const [topR, , topB] = await pixelAt(image, 392, 100);
      const [bottomR, , bottomB] = await pixelAt(image, 392, 1468);
      expect(topR).toBeGreaterThan(200);
      expect(topB).toBeLessThan(60);
      expect(bottomB).toBeGreaterThan(200);
      expect(bottomR).toBeLessThan(60);

      const userTurn = (await parley!.database.db.select().from(messages)).find((m) => m.role === "user");
      expect(userTurn?.text).toBe("what is this?");
      expect(userTurn?.media).toHaveLength(1);
      expect(await parley!.database.db.select({ sha: media.sha256 }).from(media)).toHaveLength(1);
    });

    it("refuses a PDF sent as a JPEG, saying why, and calls no model", async () => {
      await start();
      const user = channel === whatsapp ? "4915100000002" : "7100000000000002";
      const { payload } = channel.image(graph, user, "m_PDF1", fakePdf(), "holiday photo");
      await post(channel.webhook, payload);
      await waitFor(() => expect(channel.replies(graph, user).length).toBeGreaterThan(0));
      expect(channel.replies(graph, user).join("\n")).toMatch(/PDF/);
      expect(model.requests).toHaveLength(0);
    });

    it("refuses an image over MEDIA_MAX_BYTES whose size nobody declared, cutting the download at the cap", async () => {
      const cap = 1024 * 1024;
      await start({ MEDIA_MAX_BYTES: String(cap) });
      const user = channel === whatsapp ? "4915100000003" : "7100000000000003";
      const { payload, servedAt } = channel.image(graph, user, "m_HUGE1", "endless", "look");
      await post(channel.webhook, payload);
      await waitFor(() => expect(channel.replies(graph, user).length).toBeGreaterThan(0));
      expect(channel.replies(graph, user).join("\n")).toContain("That file is too large for me: the limit is 1 MB.");
      expect(model.requests).toHaveLength(0);
      expect(graph.bytesServed(servedAt)).toBeGreaterThan(cap);
      // Stopped near the cap: what the sockets had buffered, not the endless stream.
      expect(graph.bytesServed(servedAt)).toBeLessThan(cap + 16 * 1024 * 1024);
      expect(await parley!.database.db.select().from(media)).toEqual([]);
    });
  });

  it("transcribes a WhatsApp voice note fetched with the token, and answers the transcript", async () => {
    await start({ TRANSCRIBE_MODEL: "openai:whisper-1", TRANSCRIBE_BASE_URL: `${model.url}/v1`, TRANSCRIBE_API_KEY: "sk-transcribe-test-key" });
    model.reply("whisper-1", { text: "what is the capital of France" });
    graph.addMedia({ id: "880001", mimeType: "audio/ogg", bytes: oggOpusVoice(3) });
    const user = "4915100000004";
    const voice = whatsappWebhook.audio(user, "wamid.VOICE1", "880001", nowSeconds());
    await post("/webhooks/whatsapp", whatsappWebhook.payload([whatsappWebhook.change(graph.phoneNumberId, { messages: [voice] })]));
    await waitFor(() => expect(whatsapp.replies(graph, user)).toHaveLength(1));

    expect(graph.calls("download").find((r) => r.path === "/media/880001")?.headers.authorization).toBe(`Bearer ${graph.token}`);
    expect(model.requestsFor("whisper-1")).toHaveLength(1);
    expect(model.requestsFor("vision-model")[0]?.lastUserText).toMatch(/\[voice message, .*\]: what is the capital of France/);
    const [userTurn] = await parley!.database.db.select().from(messages);
    expect(userTurn?.text).toContain("what is the capital of France");
  });
});
