import { randomUUID } from "node:crypto";
import { mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { DeliveryError } from "../../src/core/errors.ts";
import { readCapped, tooLargeError } from "../../src/core/read-capped.ts";

/**
 * Images the page uploads, kept on disk under `<dataDir>/web-uploads/<uuid>` so that a message in the inbox can
 * name one (its attachment `ref` is the uuid) and a restart loses nothing. An upload is streamed to `<uuid>.part`,
 * counted as it arrives and dropped as soon as it passes the cap (nothing beyond the cap is kept, in memory or on
 * disk); only a complete, fsynced file is renamed to its uuid. A ref is only ever a uuid this store made, never a
 * path: anything else is refused before the file system is touched.
 *
 * Cleanup: `sweep()` deletes uploads older than `keepMs` (a day: long enough for the inbox to retry a message) and
 * `.part` leftovers of a crash older than an hour; the adapter runs it at start and every hour. The bytes are not
 * needed once the conversation has prepared the image (it stores its own copy in the media table).
 */

export const UPLOADS_DIR = "web-uploads";
export const UPLOAD_KEEP_MS = 24 * 60 * 60 * 1000;
const PART_KEEP_MS = 60 * 60 * 1000;
const PART = ".part";

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** True for a ref this store could have made: a lowercase version-4 UUID. */
export function isUploadRef(value: unknown): value is string {
  return typeof value === "string" && UUID_PATTERN.test(value);
}

export type ReceiveResult = { ok: true; ref: string; size: number } | { ok: false; reason: "too-large" | "empty" };

export interface UploadStore {
  /** Streams `body` to disk; over `maxBytes` it stops reading, deletes what it wrote and says so. */
  receive(body: Readable, maxBytes: number): Promise<ReceiveResult>;
  /** The size of a stored upload, or undefined when there is none under that ref. */
  size(ref: string): Promise<number | undefined>;
  /** The bytes of an upload: a RefusedInputError over `maxBytes`, a non-retryable DeliveryError for a bad or gone ref. */
  read(ref: string, maxBytes: number, signal: AbortSignal): Promise<Uint8Array>;
  /** Deletes expired uploads and abandoned partial ones; returns how many went. */
  sweep(): Promise<number>;
}

export function createUploadStore(options: { dataDir: string; now: () => number; keepMs?: number }): UploadStore {
  const dir = join(options.dataDir, UPLOADS_DIR);
  const keepMs = options.keepMs ?? UPLOAD_KEEP_MS;

  async function syncDir(): Promise<void> {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  return {
    async receive(body, maxBytes) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const ref = randomUUID();
      const part = join(dir, ref + PART);
      const handle = await open(part, "wx", 0o600);
      let size = 0;
      let complete = false;
      try {
        // Not `for await (… of body)`: leaving that loop early would destroy the request, and with it the socket
        // the 413 has to go out on.
        for await (const chunk of body.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
          size += chunk.byteLength;
          if (size > maxBytes) return { ok: false, reason: "too-large" };
          await handle.write(chunk);
        }
        if (size === 0) return { ok: false, reason: "empty" };
        await handle.sync();
        complete = true;
      } finally {
        await handle.close();
        if (!complete) await rm(part, { force: true });
      }
      await rename(part, join(dir, ref));
      await syncDir();
      return { ok: true, ref, size };
    },

    async size(ref) {
      if (!isUploadRef(ref)) return undefined;
      try {
        const info = await stat(join(dir, ref));
        return info.isFile() ? info.size : undefined;
      } catch {
        return undefined;
      }
    },

    async read(ref, maxBytes, signal) {
      if (!isUploadRef(ref)) throw new DeliveryError("web download: the attachment ref is not a web upload", false);
      let handle;
      try {
        handle = await open(join(dir, ref), "r");
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "ENOENT") {
          throw new DeliveryError(`web download: upload ${ref} is gone (uploads are kept for a day)`, false, { cause: error });
        }
        throw new DeliveryError(`web download: cannot open upload ${ref} (${code ?? "error"})`, true, { cause: error });
      }
      try {
        const { size } = await handle.stat();
        if (size > maxBytes) throw tooLargeError(maxBytes, size);
        return await readCapped(handle.createReadStream({ autoClose: false }), maxBytes, signal);
      } finally {
        await handle.close();
      }
    },

    async sweep() {
      let names: string[];
      try {
        names = await readdir(dir);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return 0;
        throw error;
      }
      const now = options.now();
      let removed = 0;
      for (const name of names) {
        const partial = name.endsWith(PART);
        // Only names this store makes; anything else in the folder is not ours to delete.
        if (!isUploadRef(partial ? name.slice(0, -PART.length) : name)) continue;
        const path = join(dir, name);
        const info = await stat(path).catch(() => undefined);
        if (!info?.isFile() || now - info.mtimeMs <= (partial ? PART_KEEP_MS : keepMs)) continue;
        await rm(path, { force: true });
        removed += 1;
      }
      return removed;
    },
  };
}
