import { randomBytes } from "node:crypto";
import type { ChatKey, OutboundFile } from "../../src/core/types.ts";

/**
 * The files Parley sends to a web chat (an /export, …), each behind a one-time link: a token of 256 random bits,
 * the only thing that names the file, and good only in the chat it was sent to (the session's). `take` hands a file
 * out once and forgets it. Files are held in memory, so a
 * restart loses the links that were not used (the user asks again); each lives at most `ttlMs` (an hour), and
 * together they hold at most `maxBytes`, the oldest going first to make room.
 */

export interface StoredFile {
  name: string;
  mimeType: string;
  bytes: Uint8Array;
}

export interface FileStore {
  /** Keeps a file for `chat` and returns its token, or undefined when it is larger than the whole store. */
  put(file: OutboundFile, chat: ChatKey): string | undefined;
  /** The file behind a token, once, for its own chat only: a second call (or one after the TTL) gives undefined. */
  take(token: string, chat: ChatKey): StoredFile | undefined;
  /** Whether a token names a file of `chat` that can still be taken (HEAD requests look without taking). */
  has(token: string, chat: ChatKey): boolean;
  clear(): void;
  readonly maxBytes: number;
}

export const FILE_TTL_MS = 60 * 60 * 1000;
export const FILE_STORE_MAX_BYTES = 64 * 1024 * 1024;
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** True for something shaped like a token (32 bytes, base64url): checked before any look-up. */
export function isFileToken(value: unknown): value is string {
  return typeof value === "string" && TOKEN_PATTERN.test(value);
}

export function createFileStore(options: { now: () => number; ttlMs?: number; maxBytes?: number }): FileStore {
  const { now, ttlMs = FILE_TTL_MS, maxBytes = FILE_STORE_MAX_BYTES } = options;
  // Insertion order is age order: the first entries are the oldest.
  const files = new Map<string, StoredFile & { chat: ChatKey; expires: number }>();
  let total = 0;

  function remove(token: string): void {
    const file = files.get(token);
    if (!file) return;
    files.delete(token);
    total -= file.bytes.byteLength;
  }

  function expire(): void {
    const at = now();
    for (const [token, file] of files) {
      if (file.expires <= at) remove(token);
    }
  }

  return {
    maxBytes,
    put(file, chat) {
      const size = file.bytes.byteLength;
      if (size > maxBytes) return undefined;
      expire();
      for (const token of files.keys()) {
        if (total + size <= maxBytes) break;
        remove(token);
      }
      const token = randomBytes(32).toString("base64url");
      files.set(token, { name: file.name, mimeType: file.mimeType, bytes: file.bytes, chat, expires: now() + ttlMs });
      total += size;
      return token;
    },
    take(token, chat) {
      expire();
      const file = isFileToken(token) ? files.get(token) : undefined;
      if (!file || file.chat !== chat) return undefined;
      remove(token);
      return { name: file.name, mimeType: file.mimeType, bytes: file.bytes };
    },
    has(token, chat) {
      expire();
      return isFileToken(token) && files.get(token)?.chat === chat;
    },
    clear() {
      files.clear();
      total = 0;
    },
  };
}
