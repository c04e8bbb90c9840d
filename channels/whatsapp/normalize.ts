import { platformTime } from "../../src/core/timestamp.ts";
import { chatKey, userKey } from "../../src/core/keys.ts";
import type { Attachment, InboundMessage } from "../../src/core/types.ts";
import type { WhatsAppMessage } from "./client-port.ts";

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
  quotedMessage?: (message: WhatsAppMessage) => Promise<{ fromMe: boolean } | undefined>;
}

/** Chats Parley answers in: people (by phone number or LID) and groups. Status, channels and lists are not. */
const CHAT_ID = /^[^@\s]+@(c\.us|g\.us|lid)$/;

/**
 * One whatsapp-web.js message → one InboundMessage, or null for what Parley does not answer: the account's own
 * messages (no self-replies, no loops), status updates, channel (newsletter) and broadcast posts, group messages
 * without an author, and types it cannot use (stickers, locations, contacts, polls, reactions, revoked messages,
 * system notices). The user is always the sender's id, never the push name, which anyone can change.
 */
export async function normalizeWhatsAppMessage(m: WhatsAppMessage, ctx: NormalizeContext): Promise<InboundMessage | null> {
  const base = readMessage(m, ctx.bot);
  if (base === null) return null;
  const replyToBot = m.hasQuotedMsg ? await quotesBot(m, ctx) : false;
  const receivedAt = platformTime(m.timestamp, "s", ctx.now());
  return { ...base, replyToBot, receivedAt };
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
  if (kind === undefined) return null;
  const attachments = kind === "text" || !m.hasMedia ? [] : [attachmentOf(m, kind)];
  const mentionsBot = (m.mentionedIds ?? []).some((id) => bot.ids.includes(id));
  const body = typeof m.body === "string" ? m.body : "";
  const text = mentionsBot ? stripMentions(body, bot) : body;
  if (text.trim() === "" && attachments.length === 0) return null;

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
  };
}

type Kind = "text" | "image" | "audio" | "document" | "video";
const KINDS: Record<string, Kind | undefined> = {
  chat: "text",
  image: "image",
  ptt: "audio",
  audio: "audio",
  document: "document",
  // Not understood yet, but kept so the conversation service can say so instead of silently dropping it.
  video: "video",
};

const DEFAULT_MIME: Record<Exclude<Kind, "text">, string | undefined> = {
  image: "image/jpeg",
  audio: "audio/ogg",
  document: undefined,
  video: "video/mp4",
};

function attachmentOf(m: WhatsAppMessage, kind: Exclude<Kind, "text">): Attachment {
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

async function quotesBot(m: WhatsAppMessage, ctx: NormalizeContext): Promise<boolean> {
  try {
    const quoted = await (ctx.quotedMessage ? ctx.quotedMessage(m) : m.getQuotedMessage?.());
    if (quoted) return quoted.fromMe === true;
  } catch {
    // The page could not answer: fall back to the quoted sender's id in the message itself.
  }
  return quotedParticipantIsBot(m, ctx.bot);
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
