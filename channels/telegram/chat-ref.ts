import { DeliveryError } from "../../src/core/errors.ts";
import { chatKey, parseKey } from "../../src/core/keys.ts";
import type { ChatKey } from "../../src/core/types.ts";

/**
 * Telegram's part of a chat key: `telegram:<chat_id>` or, for a forum topic, `telegram:<chat_id>:<message_thread_id>`
 * (a topic is its own conversation place). Private chats have positive ids, groups and channels negative ones.
 */
export interface TelegramChatRef {
  chatId: number;
  threadId?: number;
}

export function telegramChatKey(ref: TelegramChatRef): ChatKey {
  return chatKey("telegram", ref.threadId === undefined ? String(ref.chatId) : `${ref.chatId}:${ref.threadId}`);
}

export function parseTelegramChat(key: ChatKey): TelegramChatRef {
  const { channel, id } = parseKey(key);
  const match = /^(-?\d+)(?::(\d+))?$/.exec(id);
  if (channel !== "telegram" || !match) throw new DeliveryError(`"${key}" is not a Telegram chat key`, false);
  return match[2] === undefined ? { chatId: Number(match[1]) } : { chatId: Number(match[1]), threadId: Number(match[2]) };
}

/** Drafts (sendMessageDraft) exist only in private chats, which are the chats with a positive id. */
export function isPrivateChat(ref: TelegramChatRef): boolean {
  return ref.chatId > 0;
}
