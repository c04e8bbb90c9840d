import { and, inArray, lt, sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { media, messages } from "../db/schema.ts";
import type { PreparedImage } from "./image.ts";

/**
 * Media rows are stored once per content (the sha256 of the prepared bytes) and referenced from `messages.media`.
 * The same photo sent twice, or by two people, is one row; a row is deleted only when no message refers to it.
 */

export interface MediaInfo {
  sha256: string;
  mimeType: string;
  width: number | null;
  height: number | null;
  bytes: number;
}
export interface StoredMedia extends MediaInfo {
  data: Uint8Array;
}

/** Stores the image unless a row with its sha256 exists; returns the sha256 either way. */
export async function storeMedia(db: Db, image: PreparedImage): Promise<string> {
  await db
    .insert(media)
    .values({
      sha256: image.sha256,
      mimeType: image.mimeType,
      width: image.width,
      height: image.height,
      bytes: image.bytes.byteLength,
      data: toBuffer(image.bytes),
    })
    .onConflictDoNothing({ target: media.sha256 });
  return image.sha256;
}

/**
 * The rows with these ids, keyed by sha256 (ids without a row are absent). `withData: false` leaves the bytes in
 * the database: enough to write "[image: 1024×768 …]" for an old turn.
 */
export async function loadMedia(db: Db, ids: readonly string[], opts: { withData: false }): Promise<Map<string, MediaInfo>>;
export async function loadMedia(db: Db, ids: readonly string[], opts?: { withData?: true }): Promise<Map<string, StoredMedia>>;
export async function loadMedia(db: Db, ids: readonly string[], opts: { withData?: boolean } = {}): Promise<Map<string, MediaInfo>> {
  const unique = [...new Set(ids)];
  if (unique.length === 0) return new Map();
  const info = { sha256: media.sha256, mimeType: media.mimeType, width: media.width, height: media.height, bytes: media.bytes };
  const where = inArray(media.sha256, unique);
  const rows: MediaInfo[] =
    opts.withData === false
      ? await db.select(info).from(media).where(where)
      : await db.select({ ...info, data: media.data }).from(media).where(where);
  return new Map(rows.map((row) => [row.sha256, row]));
}

/**
 * Deletes media rows no message refers to any more (after /forget, retention, a turn never written), except rows
 * younger than `graceMs`, which may belong to a turn being written right now. Returns how many were deleted.
 */
export async function deleteUnreferencedMedia(db: Db, opts: { graceMs: number; now?: Date }): Promise<number> {
  const cutoff = new Date((opts.now ?? new Date()).getTime() - opts.graceMs);
  const deleted = await db
    .delete(media)
    .where(
      and(
        lt(media.createdAt, cutoff),
        sql`not exists (select 1 from ${messages} where ${messages.media} @> jsonb_build_array(${media.sha256}))`,
      ),
    )
    .returning({ sha256: media.sha256 });
  return deleted.length;
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
