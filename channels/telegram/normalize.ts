import { platformTime } from "../../src/core/timestamp.ts";
import type { Message, Update } from "grammy/types";
import { userKey } from "../../src/core/keys.ts";
import type { Attachment, InboundMessage } from "../../src/core/types.ts";
import { telegramChatKey } from "./chat-ref.ts";
import { placeOf, repliedOf, unsupportedOf } from "./message-context.ts";
import { readText, type BotIdentity } from "./message-text.ts";

export type { BotIdentity };

/**
 * One Telegram update → one InboundMessage, or null for everything Parley does not answer: updates without a
 * person's message (channel posts, membership changes), a live location's moves, messages from bots (itself
 * included), channel posts forwarded automatically into a linked discussion group, and service messages (members joining, pins). Text keeps its hidden links and formatting
 * as Markdown; a reply, a quote, a location or venue travel with it; what Parley cannot use yet (a sticker, a poll) is
 * named in `unsupported`. An anonymous admin or a person posting as their channel is keyed by that chat. A Telegram Business
 * message (a customer writing to an account that connected the bot) is answered through its business connection. Pure: `receivedAt` is Telegram's own message date, or `now` when that is unusable.
 */
export function normalizeUpdate(update: Update, bot: BotIdentity, now = new Date()): InboundMessage | null {
  if (update.callback_query) return normalizeButton(update.callback_query, bot, now);
  const edited = update.edited_message !== undefined || update.edited_business_message !== undefined;
  const m = update.message ?? update.edited_message ?? update.business_message ?? update.edited_business_message;
  if (!m || !m.from || m.is_automatic_forward) return null;
  // A business account's chat: only its customer's messages are answered, never the account owner's own.
  const connection = m.business_connection_id;
  if (connection !== undefined && (m.chat.type !== "private" || m.from.id !== m.chat.id)) return null;
  // An anonymous group admin (sender_chat is the group) or someone posting as their channel speaks as that chat; its
  // `from` is a placeholder bot. Every other bot, this one included, is not answered.
  const speaker = m.sender_chat;
  if (!speaker && m.from.is_bot) return null;
  // A live location moving is an edit too: only its first position is answered. An edit is of words, or nothing.
  if (edited && (m.location !== undefined || (m.text ?? m.caption ?? "") === "")) return null;
  const rawText = m.text ?? m.caption ?? "";
  const entities = (m.text !== undefined ? m.entities : m.caption_entities) ?? [];
  const attachments = attachmentsOf(m);
  const place = placeOf(m);
  const unsupported = attachments.length === 0 && !place ? unsupportedOf(m) : undefined;
  if (rawText === "" && attachments.length === 0 && !place && !unsupported) return null;

  const { text, mentionsBot } = readText(rawText, entities, bot);
  const replyTo = repliedOf(m, bot);
  const inTopic = m.is_topic_message === true && m.message_thread_id !== undefined;
  const reply = m.reply_to_message;
  // In a forum topic every message "replies" to the topic's first message; that is not a reply to the bot.
  const replyToBot = reply !== undefined && reply.from?.id === bot.id && !(inTopic && reply.message_id === m.message_thread_id);
  const displayName = speaker
    ? speaker.title
    : [m.from.first_name, m.from.last_name].filter(Boolean).join(" ") || m.from.username;

  return {
    channel: "telegram",
    // Message ids count per chat, and a business chat with a person has the same chat id as the bot's own chat with them.
    platformMessageId: connection !== undefined ? `business:${connection}:${m.chat.id}:${m.message_id}` : `${m.chat.id}:${m.message_id}`,
    chat: telegramChatKey(
      connection !== undefined
        ? { chatId: m.chat.id, businessConnectionId: connection }
        : inTopic
          ? { chatId: m.chat.id, threadId: m.message_thread_id! }
          : { chatId: m.chat.id },
    ),
    user: userKey("telegram", speaker ? speaker.id : m.from.id),
    ...(displayName ? { displayName } : {}),
    isGroup: m.chat.type === "group" || m.chat.type === "supergroup",
    mentionsBot,
    replyToBot,
    text,
    ...(m.forward_origin ? { forwarded: true } : {}),
    attachments,
    receivedAt: platformTime(m.date, "s", now),
    ...(m.media_group_id ? { groupId: m.media_group_id } : {}),
    ...(edited ? { edited: true } : {}),
    ...(replyTo ? { replyTo } : {}),
    ...(place ? { place } : {}),
    ...(unsupported ? { unsupported } : {}),
  };
}

function attachmentsOf(m: Message): Attachment[] {
  const file = (
    kind: Attachment["kind"],
    f: { file_id: string; file_size?: number; mime_type?: string; file_name?: string },
    defaultMime?: string,
  ): Attachment => {
    const mimeType = f.mime_type ?? defaultMime;
    return {
      kind,
      ref: f.file_id,
      ...(mimeType === undefined ? {} : { mimeType }),
      ...(f.file_size === undefined ? {} : { sizeBytes: f.file_size }),
      ...(f.file_name === undefined ? {} : { fileName: f.file_name }),
    };
  };
  if (m.photo && m.photo.length > 0) {
    const largest = m.photo.reduce((a, b) => (b.width * b.height > a.width * a.height ? b : a));
    return [file("image", largest, "image/jpeg")];
  }
  if (m.document) return [file(m.document.mime_type?.startsWith("image/") ? "image" : "file", m.document)];
  if (m.voice) return [file("audio", m.voice, "audio/ogg")];
  if (m.audio) return [file("audio", m.audio)];
  // Not understood yet, but kept so the conversation service can say so instead of silently dropping them.
  if (m.video) return [file("file", m.video, "video/mp4")];
  if (m.video_note) return [file("file", m.video_note, "video/mp4")];
  return [];
}

/**
 * A tap on one of the bot's buttons: its callback data is the command it stands for, sent as the user's own message
 * in the chat of the message that carried the button. Only buttons on the bot's own messages count.
 */
function normalizeButton(query: NonNullable<Update["callback_query"]>, bot: BotIdentity, now: Date): InboundMessage | null {
  const m = query.message;
  if (!query.data || !m || !("chat" in m) || query.from.is_bot) return null;
  if ("from" in m && m.from && m.from.id !== bot.id) return null;
  const threadId = "message_thread_id" in m && "is_topic_message" in m && m.is_topic_message ? m.message_thread_id : undefined;
  const displayName = [query.from.first_name, query.from.last_name].filter(Boolean).join(" ") || query.from.username;
  return {
    channel: "telegram",
    platformMessageId: `callback:${query.id}`,
    chat: telegramChatKey(threadId !== undefined ? { chatId: m.chat.id, threadId } : { chatId: m.chat.id }),
    user: userKey("telegram", query.from.id),
    ...(displayName ? { displayName } : {}),
    isGroup: m.chat.type === "group" || m.chat.type === "supergroup",
    mentionsBot: true,
    replyToBot: true,
    text: query.data,
    attachments: [],
    receivedAt: platformTime(m.date, "s", now),
  };
}
