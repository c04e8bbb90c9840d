import type { Message, MessageOrigin, User } from "grammy/types";
import type { Place, RepliedMessage } from "../../src/core/types.ts";
import type { BotIdentity } from "./message-text.ts";

/**
 * What a Telegram message carries besides its own words, as plain data for the conversation service: the message it
 * replies to (in this chat, `reply_to_message`; in another chat or topic, `external_reply`), the part it quotes
 * (`quote`), a place (`location`, `venue`), and what Parley cannot use yet. Pure.
 */

/** The replied-to message, or undefined when the message replies to nothing (a topic's first message is no reply). */
export function repliedOf(m: Message, bot: BotIdentity): RepliedMessage | undefined {
  const quote = m.quote?.text;
  const inTopic = m.is_topic_message === true && m.message_thread_id !== undefined;
  const reply = m.reply_to_message;
  if (reply && !(inTopic && reply.message_id === m.message_thread_id)) {
    const text = reply.text ?? reply.caption;
    const kind = kindOf(reply);
    return {
      id: `${m.chat.id}:${reply.message_id}`,
      ...authorOf(reply.from, reply.sender_chat?.title, m, bot),
      ...(text === undefined ? {} : { text }),
      ...(kind === undefined ? {} : { kind }),
      ...(quote === undefined ? {} : { quote }),
    };
  }
  const external = m.external_reply;
  if (external) {
    const kind = kindOf(external) ?? "a message in another chat";
    return { ...originAuthor(external.origin, m, bot), kind, ...(quote === undefined ? {} : { quote }) };
  }
  if (m.reply_to_story) return { author: "other", kind: "a story" };
  return undefined;
}

/** A venue (with its name and address) or a location the sender shared. */
export function placeOf(m: Message): Place | undefined {
  if (m.venue) {
    const { latitude, longitude } = m.venue.location;
    return { latitude, longitude, name: m.venue.title, address: m.venue.address };
  }
  if (m.location) {
    const { latitude, longitude, live_period } = m.location;
    return { latitude, longitude, ...(live_period === undefined ? {} : { live: true }) };
  }
  return undefined;
}

/** What a person sent that Parley cannot use yet, in words ("a poll"); undefined for everything else. */
export function unsupportedOf(m: Message): string | undefined {
  for (const [field, what] of UNSUPPORTED) if (m[field] !== undefined) return what;
  return undefined;
}

/** Message fields a person sends (not service messages) that Parley cannot use yet. */
const UNSUPPORTED: ReadonlyArray<readonly [keyof Message, string]> = [
  ["sticker", "stickers"],
  ["poll", "polls"],
  ["dice", "dice"],
  ["contact", "contact cards"],
  ["game", "games"],
  ["story", "stories"],
  ["paid_media", "paid media"],
  ["checklist", "checklists"],
  ["invoice", "invoices"],
  ["giveaway", "giveaways"],
];

type Content = Pick<Message, "photo" | "voice" | "audio" | "video" | "video_note" | "document" | "sticker" | "animation"> &
  Pick<Message, "location" | "venue" | "poll" | "contact" | "dice" | "game" | "story">;

/** What a (replied-to) message was when it was not only text. */
function kindOf(m: Partial<Content>): string | undefined {
  if (m.photo) return "an image";
  if (m.voice) return "a voice note";
  if (m.video_note) return "a video note";
  if (m.video) return "a video";
  if (m.animation) return "a GIF";
  if (m.audio) return "an audio file";
  if (m.sticker) return `a sticker${m.sticker.emoji ? ` ${m.sticker.emoji}` : ""}`;
  if (m.document) return `a file${m.document.file_name ? ` named ${m.document.file_name}` : ""}`;
  if (m.venue) return `a place (${m.venue.title}, ${m.venue.address})`;
  if (m.location) return `a location (${m.location.latitude}, ${m.location.longitude})`;
  if (m.poll) return `a poll ("${m.poll.question}")`;
  if (m.contact) return "a contact card";
  if (m.dice) return "a dice roll";
  if (m.game) return "a game";
  if (m.story) return "a story";
  return undefined;
}

function authorOf(from: User | undefined, chatTitle: string | undefined, m: Message, bot: BotIdentity) {
  if (from?.id === bot.id) return { author: "bot" as const };
  // An anonymous admin or a channel speaks as a chat; its `from` is a placeholder bot, not a person.
  if (chatTitle !== undefined) return { author: "other" as const, authorName: chatTitle };
  if (from && from.id === m.from?.id) return { author: "sender" as const };
  const name = from ? [from.first_name, from.last_name].filter(Boolean).join(" ") || from.username : undefined;
  return { author: "other" as const, ...(name ? { authorName: name } : {}) };
}

function originAuthor(origin: MessageOrigin, m: Message, bot: BotIdentity) {
  switch (origin.type) {
    case "user":
      return authorOf(origin.sender_user, undefined, m, bot);
    case "hidden_user":
      return { author: "other" as const, authorName: origin.sender_user_name };
    case "chat":
      return { author: "other" as const, ...(origin.sender_chat.title ? { authorName: origin.sender_chat.title } : {}) };
    case "channel":
      return { author: "other" as const, ...(origin.chat.title ? { authorName: origin.chat.title } : {}) };
  }
}
