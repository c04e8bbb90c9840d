import { DeliveryError } from "../../src/core/errors.ts";
import { chatKey, parseKey } from "../../src/core/keys.ts";
import type { ChatKey } from "../../src/core/types.ts";

/**
 * Telegram's part of a chat key: `telegram:<chat_id>`; for a forum topic, `telegram:<chat_id>:<message_thread_id>` (a
 * topic is its own conversation place); for a chat of a Telegram Business account the bot answers for,
 * `telegram:business:<business_connection_id>:<chat_id>` (replies go through that connection). Private chats have
 * positive ids, groups and channels negative ones.
 */
export interface TelegramChatRef {
  chatId: number;
  threadId?: number;
  businessConnectionId?: string;
}

const BUSINESS = "business:";

export function telegramChatKey(ref: TelegramChatRef): ChatKey {
  if (ref.businessConnectionId !== undefined) return chatKey("telegram", `${BUSINESS}${ref.businessConnectionId}:${ref.chatId}`);
  return chatKey("telegram", ref.threadId === undefined ? String(ref.chatId) : `${ref.chatId}:${ref.threadId}`);
}

export function parseTelegramChat(key: ChatKey): TelegramChatRef {
  const { channel, id } = parseKey(key);
  const business = /^business:(\S+):(\d+)$/.exec(id);
  if (channel === "telegram" && business) return { chatId: Number(business[2]), businessConnectionId: business[1]! };
  const match = /^(-?\d+)(?::(\d+))?$/.exec(id);
  if (channel !== "telegram" || !match) throw new DeliveryError(`"${key}" is not a Telegram chat key`, false);
  return match[2] === undefined ? { chatId: Number(match[1]) } : { chatId: Number(match[1]), threadId: Number(match[2]) };
}

/**
 * Drafts (sendMessageDraft) exist only in the bot's own private chats, which are the chats with a positive id; a
 * business chat is a private chat of the business account, where Telegram has no drafts for a bot.
 */
export function isPrivateChat(ref: TelegramChatRef): boolean {
  return ref.chatId > 0 && ref.businessConnectionId === undefined;
}
