import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { openDatabase, type Database } from "../src/db/client.ts";
import { conversations, media, messages } from "../src/db/schema.ts";
import { prepareImage, type PreparedImage } from "../src/media/image.ts";
import { deleteUnreferencedMedia, loadMedia, storeMedia } from "../src/media/store.ts";
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { captureLogs } from "./support/logs.ts";
import { opaqueWebp, solidJpeg, translucentPng } from "./support/images.ts";

describe.each(DATABASE_KINDS)("media store on %s", (kind) => {
  let testDb: TestDatabase;
  let database: Database;
  let photo: PreparedImage;
  let sticker: PreparedImage;

  // One database for the file (PGlite takes seconds to start); each test starts from empty tables.
  beforeAll(async () => {
    testDb = await createTestDatabase(kind);
    database = await openDatabase(testDb.target, captureLogs().log);
    await database.migrate();
    photo = await prepareImage(await solidJpeg(120, 90));
    sticker = await prepareImage(await translucentPng(32, 32));
  });
  beforeEach(async () => {
    await database.db.delete(messages);
    await database.db.delete(conversations);
    await database.db.delete(media);
  });
  afterAll(async () => {
    await database.close();
    await testDb.drop();
  });

  it("stores the same image once, however often it is sent", async () => {
    const again = await prepareImage(await solidJpeg(120, 90));
    expect(again.sha256).toBe(photo.sha256);
    expect(await storeMedia(database.db, photo)).toBe(photo.sha256);
    expect(await storeMedia(database.db, again)).toBe(photo.sha256);
    await Promise.all([storeMedia(database.db, photo), storeMedia(database.db, photo), storeMedia(database.db, sticker)]);
    const rows = await database.db.select({ sha256: media.sha256 }).from(media);
    expect(rows.map((r) => r.sha256).sort()).toEqual([photo.sha256, sticker.sha256].sort());
  });

  it("loads rows with their bytes, or only what a placeholder needs", async () => {
    await storeMedia(database.db, photo);
    await storeMedia(database.db, sticker);
    const full = await loadMedia(database.db, [photo.sha256, sticker.sha256, photo.sha256, "0".repeat(64)]);
    expect([...full.keys()].sort()).toEqual([photo.sha256, sticker.sha256].sort());
    const row = full.get(photo.sha256)!;
    expect(row).toMatchObject({ mimeType: "image/jpeg", width: 120, height: 90, bytes: photo.bytes.byteLength });
    expect(Buffer.from(row.data).equals(Buffer.from(photo.bytes))).toBe(true);
    expect(full.get(sticker.sha256)?.mimeType).toBe("image/png");

    const info = await loadMedia(database.db, [photo.sha256], { withData: false });
    expect(info.get(photo.sha256)).toEqual({ sha256: photo.sha256, mimeType: "image/jpeg", width: 120, height: 90, bytes: photo.bytes.byteLength });
    expect(await loadMedia(database.db, [])).toEqual(new Map());
  });

  it("deletes only rows no message refers to, after a grace period", async () => {
    const unused = await prepareImage(await opaqueWebp(20, 20));
    await Promise.all([photo, sticker, unused].map((image) => storeMedia(database.db, image)));
    const [conversation] = await database.db
      .insert(conversations)
      .values({ userKey: "telegram:1", chatKey: "telegram:1" })
      .returning();
    await database.db.insert(messages).values({ conversationId: conversation!.id, role: "user", text: "look", tokens: 3, media: [photo.sha256, sticker.sha256] });

    expect(await deleteUnreferencedMedia(database.db, { graceMs: 60_000 })).toBe(0);
    expect(await deleteUnreferencedMedia(database.db, { graceMs: 0, now: new Date(Date.now() + 1000) })).toBe(1);
    const left = await loadMedia(database.db, [photo.sha256, sticker.sha256, unused.sha256], { withData: false });
    expect([...left.keys()].sort()).toEqual([photo.sha256, sticker.sha256].sort());
  });
});
