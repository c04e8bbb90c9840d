import { platformTime } from "../../src/core/timestamp.ts";
import { chatKey, userKey } from "../../src/core/keys.ts";
import type { Attachment, InboundMessage, Place, RepliedMessage } from "../../src/core/types.ts";
import type { QuotedWhatsAppMessage, WhatsAppMessage } from "./client-port.ts";

/** Who the bot is: the linked account's wid ("12345@c.us") and, when known, its LID ("9876@lid"). */
export interface BotIdentity {
  ids: readonly string[];
}

export interface NormalizeContext {
  bot: BotIdentity;
  /** For a message without a usable timestamp. */
  now: () => Date;
  /**
   * Looks up the message this one quotes; the library can only do it asynchronously (`getQuotedMessage()` reads the
   * page). Default: that call. When it fails, the quoted sender's id in the message itself decides.
   */
  quotedMessage?: (message: WhatsAppMessage) => Promise<QuotedWhatsAppMessage | undefined>;
}

/** Chats Parley answers in: people (by phone number or LID) and groups. Status, channels and lists are not. */
const CHAT_ID = /^[^@\s]+@(c\.us|g\.us|lid)$/;

/**
 * One whatsapp-web.js message → one InboundMessage, or null for what Parley does not answer: the account's own
 * messages (no self-replies, no loops), status updates, channel (newsletter) and broadcast posts, group messages
 * without an author, reactions, revoked messages and system notices. A location is a place; a quoted message
 * travels as `replyTo`; what a person sends that Parley cannot use yet (stickers, contact cards, polls, orders) is
 * named in `unsupported`. The user is always the sender's id, never the push name, which anyone can change.
 */
export async function normalizeWhatsAppMessage(m: WhatsAppMessage, ctx: NormalizeContext): Promise<InboundMessage | null> {
  const base = readMessage(m, ctx.bot);
  if (base === null) return null;
  const replyTo = m.hasQuotedMsg ? await quotedOf(m, base.user, ctx) : undefined;
  const receivedAt = platformTime(m.timestamp, "s", ctx.now());
  return { ...base, replyToBot: replyTo?.author === "bot", ...(replyTo ? { replyTo } : {}), receivedAt };
}

/** The pure part: everything but the quoted-message lookup and the time. */
export function readMessage(m: WhatsAppMessage, bot: BotIdentity): Omit<InboundMessage, "replyToBot" | "receivedAt"> | null {
  if (m.fromMe || m.id.fromMe || m.isStatus) return null;
  const chat = m.from;
  if (typeof chat !== "string" || !CHAT_ID.test(chat) || serialized(m.id.remote) === "status@broadcast") return null;
  const isGroup = chat.endsWith("@g.us");
  const sender = isGroup ? m.author : m.from;
  if (typeof sender !== "string" || !CHAT_ID.test(sender) || sender.endsWith("@g.us")) return null;
  if (bot.ids.includes(sender)) return null;

  const kind = KINDS[m.type];
  const unsupported = kind === undefined ? UNSUPPORTED[m.type] : undefined;
  if (kind === undefined && unsupported === undefined) return null;
  const place = kind === "location" ? placeOf(m) : undefined;
  if (kind === "location" && place === undefined) return null;
  const attachments = kind === undefined || kind === "text" || kind === "location" || !m.hasMedia ? [] : [attachmentOf(m, kind)];
  const mentionsBot = (m.mentionedIds ?? []).some((id) => bot.ids.includes(id));
  // A location's body is its map thumbnail (base64), and a sticker's or a contact card's is no one's words.
  const body = typeof m.body === "string" && (kind === "text" || attachments.length > 0) ? m.body : "";
  const text = mentionsBot ? stripMentions(body, bot) : body;
  if (text.trim() === "" && attachments.length === 0 && !place && !unsupported) return null;

  const notifyName = m._data?.notifyName?.trim();
  return {
    channel: "whatsapp",
    platformMessageId: m.id._serialized,
    chat: chatKey("whatsapp", chat),
    user: userKey("whatsapp", sender),
    ...(notifyName ? { displayName: notifyName } : {}),
    isGroup,
    mentionsBot,
    text,
    ...(m.isForwarded === true ? { forwarded: true } : {}),
    attachments,
    ...(place ? { place } : {}),
    ...(unsupported ? { unsupported } : {}),
  };
}

/** Message types a person sends that Parley cannot use yet (whatsapp-web.js MessageTypes), in words. */
const UNSUPPORTED: Record<string, string | undefined> = {
  sticker: "stickers",
  vcard: "contact cards",
  multi_vcard: "contact cards",
  poll_creation: "polls",
  order: "orders",
  product: "products",
  payment: "payments",
  groups_v4_invite: "group invites",
  event_creation: "events",
  list: "lists",
};

/** What a quoted message was when it was not text, by its whatsapp-web.js type. */
const QUOTED_KIND: Record<string, string | undefined> = {
  image: "an image",
  ptt: "a voice note",
  audio: "an audio file",
  video: "a video",
  ptv: "a video note",
  document: "a file",
  sticker: "a sticker",
  location: "a location",
  vcard: "a contact card",
  poll_creation: "a poll",
};

function placeOf(m: WhatsAppMessage): Place | undefined {
  const latitude = Number(m.location?.latitude);
  const longitude = Number(m.location?.longitude);
  if (!Number.isFinite(latitude) || !Number.isFinite(longitude) || Math.abs(latitude) > 90 || Math.abs(longitude) > 180) return undefined;
  const name = m.location?.name?.trim();
  const address = m.location?.address?.trim();
  return { latitude, longitude, ...(name ? { name } : {}), ...(address ? { address } : {}) };
}

type Kind = "text" | "image" | "audio" | "document" | "video" | "location";
const KINDS: Record<string, Kind | undefined> = {
  chat: "text",
  location: "location",
  image: "image",
  ptt: "audio",
  audio: "audio",
  document: "document",
  // Not understood yet, but kept so the conversation service can say so instead of silently dropping it.
  video: "video",
};

const DEFAULT_MIME: Record<Exclude<Kind, "text" | "location">, string | undefined> = {
  image: "image/jpeg",
  audio: "audio/ogg",
  document: undefined,
  video: "video/mp4",
};

function attachmentOf(m: WhatsAppMessage, kind: Exclude<Kind, "text" | "location">): Attachment {
  const mimeType = m._data?.mimetype ?? DEFAULT_MIME[kind];
  const size = m._data?.size;
  const fileName = kind === "document" ? m._data?.filename : undefined;
  const attachmentKind: Attachment["kind"] =
    kind === "image" || (kind === "document" && mimeType?.startsWith("image/")) ? "image" : kind === "audio" ? "audio" : "file";
  return {
    kind: attachmentKind,
    ref: m.id._serialized,
    ...(mimeType === undefined ? {} : { mimeType }),
    ...(typeof size === "number" && Number.isFinite(size) && size >= 0 ? { sizeBytes: size } : {}),
    ...(fileName ? { fileName } : {}),
  };
}

/** WhatsApp writes a mention as "@<number>" in the body; the bot's own ones are removed ("@123 hi" → "hi"). */
export function stripMentions(text: string, bot: BotIdentity): string {
  let out = text;
  for (const id of bot.ids) {
    const user = id.slice(0, id.indexOf("@"));
    if (user === "") continue;
    out = out.replace(new RegExp(`(^|\\s)@${escapeRegExp(user)}(?![\\p{L}\\p{N}])[\\s,:]*`, "gu"), "$1");
  }
  return out.trim();
}

/**
 * The quoted message, read through the page; when the page cannot answer, the quoted sender's id in the message
 * itself says at least whether it was the bot's.
 */
async function quotedOf(m: WhatsAppMessage, sender: string, ctx: NormalizeContext): Promise<RepliedMessage> {
  let quoted: QuotedWhatsAppMessage | undefined;
  try {
    quoted = await (ctx.quotedMessage ? ctx.quotedMessage(m) : m.getQuotedMessage?.());
  } catch {
    quoted = undefined;
  }
  if (!quoted) return { author: quotedParticipantIsBot(m, ctx.bot) ? "bot" : "unknown" };
  const kind = typeof quoted.type === "string" ? QUOTED_KIND[quoted.type] : undefined;
  const words = typeof quoted.body === "string" && (quoted.type === "chat" || kind !== undefined) && quoted.type !== "location" ? quoted.body : "";
  const by = typeof quoted.author === "string" && quoted.author !== "" ? quoted.author : quoted.from;
  const author = quoted.fromMe === true ? "bot" : `whatsapp:${by}` === sender ? "sender" : "other";
  const name = quoted._data?.notifyName?.trim();
  return {
    author,
    ...(author === "other" && name ? { authorName: name } : {}),
    ...(words.trim() !== "" ? { text: words } : {}),
    ...(kind ? { kind } : {}),
    ...(words.trim() === "" && !kind ? { kind: "a message" } : {}),
  };
}

export function quotedParticipantIsBot(m: WhatsAppMessage, bot: BotIdentity): boolean {
  const participant = m._data?.quotedParticipant;
  return participant !== undefined && bot.ids.includes(serialized(participant));
}

function serialized(id: string | { _serialized: string } | undefined): string {
  return typeof id === "string" ? id : (id?._serialized ?? "");
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
