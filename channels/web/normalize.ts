import { chatKey, userKey } from "../../src/core/keys.ts";
import type { InboundMessage } from "../../src/core/types.ts";

/** Limits of one browser message; the body cap sits in front of these in the router. */
export const MAX_TEXT_CHARS = 16_000;

const ID_PATTERN = /^[A-Za-z0-9-]{8,64}$/;

/** A browser's client id or message id: UUID-ish, 8 to 64 characters of letters, digits and hyphens. */
export function isClientId(value: unknown): value is string {
  return typeof value === "string" && ID_PATTERN.test(value);
}

export type NormalizeResult = { ok: true; message: InboundMessage } | { ok: false; error: string };

/** Turns the page's POST body `{ clientId, text, id }` into an InboundMessage, or says plainly what is wrong. */
export function normalizeWebMessage(body: unknown, receivedAt: Date): NormalizeResult {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return { ok: false, error: "Send a JSON object { clientId, text, id }." };
  }
  const { clientId, text, id } = body as Record<string, unknown>;
  if (!isClientId(clientId)) {
    return { ok: false, error: "clientId must be 8 to 64 letters, digits or hyphens (a UUID)." };
  }
  if (!isClientId(id)) {
    return { ok: false, error: "id must be 8 to 64 letters, digits or hyphens (a UUID made by the page)." };
  }
  if (typeof text !== "string") return { ok: false, error: "text is required." };
  const trimmed = text.trim();
  if (trimmed === "") return { ok: false, error: "text is empty." };
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
      platformMessageId: `${clientId}:${id}`,
      chat: chatKey("web", clientId),
      user: userKey("web", clientId),
      isGroup: false,
      mentionsBot: false,
      replyToBot: false,
      text: trimmed,
      attachments: [],
      receivedAt,
    },
  };
}
