import { parseKey } from "../../src/core/keys.ts";
import type { Attachment, ChatKey, InboundMessage, UserKey } from "../../src/core/types.ts";
import { isUploadRef } from "./uploads.ts";

/** Limits of one browser message; the body cap sits in front of these in the router. */
export const MAX_TEXT_CHARS = 16_000;
const MAX_FILE_NAME_CHARS = 200;
/** A type/subtype as a browser reports it; only a hint (the conversation sniffs the bytes), dropped when odd. */
const MIME_PATTERN = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$/;

const ID_PATTERN = /^[A-Za-z0-9-]{8,64}$/;

/** A message id the page made: UUID-ish, 8 to 64 characters of letters, digits and hyphens. */
export function isMessageId(value: unknown): value is string {
  return typeof value === "string" && ID_PATTERN.test(value);
}

export type NormalizeResult = { ok: true; message: InboundMessage } | { ok: false; error: string };

/**
 * Turns the page's POST body `{ text, id, image? }` from `sender` (the identity of the request's session, never a
 * field of the body: a `clientId` an older page sends is ignored) into an InboundMessage, or says plainly what is
 * wrong. `image` is `{ ref, mimeType?, name? }` for a file uploaded first to /api/uploads; with an image the text
 * (the caption) may be empty. The router checks that the upload exists before the message is stored.
 */
export function normalizeWebMessage(body: unknown, sender: UserKey, receivedAt: Date): NormalizeResult {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return { ok: false, error: "Send a JSON object { text, id }." };
  }
  const { text, id, image } = body as Record<string, unknown>;
  if (!isMessageId(id)) {
    return { ok: false, error: "id must be 8 to 64 letters, digits or hyphens (a UUID made by the page)." };
  }
  const attachment = image === undefined ? undefined : imageAttachment(image);
  if (attachment === null) {
    return { ok: false, error: "image must be { ref, mimeType?, name? } with the ref /api/uploads answered." };
  }
  const typed = typeof text === "string" ? text.trim() : undefined;
  if (typed === undefined && (text !== undefined || !attachment)) return { ok: false, error: "text is required." };
  const trimmed = typed ?? "";
  if (trimmed === "" && !attachment) return { ok: false, error: "text is empty." };
  if (trimmed.length > MAX_TEXT_CHARS) {
    return {
      ok: false,
      error: `The message is ${trimmed.length.toLocaleString("en")} characters; the limit is ${MAX_TEXT_CHARS.toLocaleString("en")}.`,
    };
  }
  return {
    ok: true,
    message: {
      channel: "web",
      platformMessageId: `${parseKey(sender).id}:${id}`,
      chat: sender as ChatKey,
      user: sender,
      isGroup: false,
      mentionsBot: false,
      replyToBot: false,
      text: trimmed,
      attachments: attachment ? [attachment] : [],
      receivedAt,
    },
  };
}

/** The attachment an `image` field names, or null when it is malformed. The size is filled in by the router. */
function imageAttachment(value: unknown): Attachment | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const { ref, mimeType, name } = value as Record<string, unknown>;
  if (!isUploadRef(ref)) return null;
  const attachment: Attachment = { kind: "image", ref };
  const type = typeof mimeType === "string" ? mimeType.trim().toLowerCase() : "";
  if (MIME_PATTERN.test(type)) attachment.mimeType = type;
  // A display name only (never a path): no control characters or separators, and not too long.
  const fileName = typeof name === "string" ? [...name.replace(/[\p{Cc}\p{Cf}\\/]/gu, "").trim()].slice(0, MAX_FILE_NAME_CHARS).join("") : "";
  if (fileName) attachment.fileName = fileName;
  return attachment;
}
