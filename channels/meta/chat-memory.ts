import type { ChatKey } from "../../src/core/types.ts";

/**
 * What a Meta channel remembers about recent chats, in memory and bounded: the last inbound message (its id for
 * WhatsApp's typing indicator, its time for the 24-hour window) and when "typing…" was last shown. After a restart
 * nothing is known: typing is skipped and the window is left to Graph to enforce (errors.ts maps its refusal).
 */

/** Meta's customer-service window: free-form replies only within 24 hours of the user's last message. */
export const REPLY_WINDOW_MS = 24 * 60 * 60 * 1000;
const MAX_CHATS = 10_000;

interface ChatEntry {
  lastInboundId: string;
  lastInboundAt: number;
  typingAt?: number;
}

export interface ChatMemory {
  noteInbound(chat: ChatKey, messageId: string, at: Date): void;
  lastInboundId(chat: ChatKey): string | undefined;
  /** True when the last inbound message is known and older than 24 hours at `now`. */
  windowClosed(chat: ChatKey, now: Date): boolean;
  /** True (and remembered) when "typing…" was not shown within `everyMs`; the indicator lasts about 20-25 s. */
  typingDue(chat: ChatKey, now: Date, everyMs: number): boolean;
  /** A message was sent: the platform hid the indicator, so the next typing() shows it again. */
  noteSent(chat: ChatKey): void;
}

export function createChatMemory(maxChats = MAX_CHATS): ChatMemory {
  const chats = new Map<ChatKey, ChatEntry>();
  return {
    noteInbound(chat, messageId, at) {
      const previous = chats.get(chat);
      // Redeliveries and batches may arrive out of order: the window runs from the newest message.
      if (previous && previous.lastInboundAt > at.getTime()) return;
      chats.delete(chat);
      chats.set(chat, { lastInboundId: messageId, lastInboundAt: at.getTime() });
      if (chats.size > maxChats) chats.delete(chats.keys().next().value!);
    },
    lastInboundId: (chat) => chats.get(chat)?.lastInboundId,
    windowClosed(chat, now) {
      const entry = chats.get(chat);
      return entry !== undefined && now.getTime() - entry.lastInboundAt > REPLY_WINDOW_MS;
    },
    typingDue(chat, now, everyMs) {
      const entry = chats.get(chat);
      if (!entry) return true;
      if (entry.typingAt !== undefined && now.getTime() - entry.typingAt < everyMs) return false;
      entry.typingAt = now.getTime();
      return true;
    },
    noteSent(chat) {
      const entry = chats.get(chat);
      if (entry) delete entry.typingAt;
    },
  };
}
