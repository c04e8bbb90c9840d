import type { Api } from "grammy";
import type { Logger } from "pino";
import type { ChatKey, SendOptions } from "../../src/core/types.ts";
import { isPrivateChat, parseTelegramChat, type TelegramChatRef } from "./chat-ref.ts";
import { describeError, isNotModifiedError, isParseEntitiesError, toChannelError } from "./errors.ts";
import { markdownToTelegramHtml } from "./format.ts";

/**
 * Sending, editing, drafts and "typing…". Text arrives as Markdown, goes out as Telegram HTML with link previews
 * off; if Telegram still cannot parse the HTML, the same text is sent again without a parse mode, so nothing is lost.
 */
export function createOutbound(api: Api, log: Logger, token: string) {
  async function withPlainFallback<T>(markdown: string, call: (text: string, html: boolean) => Promise<T>): Promise<T> {
    try {
      return await call(markdownToTelegramHtml(markdown), true);
    } catch (error) {
      if (!isParseEntitiesError(error)) throw error;
      log.warn({ err: describeError(error, token) }, "Telegram rejected the HTML; sending the text as plain text");
      return call(markdown, false);
    }
  }

  const common = (ref: TelegramChatRef, html: boolean) => ({
    ...(html ? { parse_mode: "HTML" as const } : {}),
    ...(ref.threadId === undefined ? {} : { message_thread_id: ref.threadId }),
  });

  return {
    async send(chat: ChatKey, text: string, opts?: SendOptions): Promise<{ id: string }> {
      const ref = parseTelegramChat(chat);
      const replyTo = opts?.replyTo === undefined ? undefined : Number(opts.replyTo.split(":").pop());
      try {
        const sent = await withPlainFallback(text, (body, html) =>
          api.sendMessage(ref.chatId, body, {
            ...common(ref, html),
            link_preview_options: { is_disabled: true },
            ...(opts?.buttons?.length
              ? { reply_markup: { inline_keyboard: [opts.buttons.map((b) => ({ text: b.label, callback_data: b.command }))] } }
              : {}),
            ...(replyTo !== undefined && Number.isInteger(replyTo)
              ? { reply_parameters: { message_id: replyTo, allow_sending_without_reply: true } }
              : {}),
          }),
        );
        return { id: String(sent.message_id) };
      } catch (error) {
        throw toChannelError(error, token);
      }
    },

    async edit(chat: ChatKey, id: string, text: string): Promise<void> {
      const ref = parseTelegramChat(chat);
      try {
        await withPlainFallback(text, (body, html) =>
          api.editMessageText(ref.chatId, Number(id), body, {
            ...(html ? { parse_mode: "HTML" as const } : {}),
            link_preview_options: { is_disabled: true },
          }),
        );
      } catch (error) {
        if (isNotModifiedError(error)) return;
        throw toChannelError(error, token);
      }
    },

    /** Drafts exist only in private chats; in a group this resolves without doing anything. */
    async draft(chat: ChatKey, draftId: number, text: string): Promise<void> {
      const ref = parseTelegramChat(chat);
      if (!isPrivateChat(ref)) return;
      try {
        await withPlainFallback(text, (body, html) => api.sendMessageDraft(ref.chatId, draftId, body, common(ref, html)));
      } catch (error) {
        throw toChannelError(error, token);
      }
    },

    async typing(chat: ChatKey): Promise<void> {
      const ref = parseTelegramChat(chat);
      try {
        await api.sendChatAction(ref.chatId, "typing", common(ref, false));
      } catch (error) {
        throw toChannelError(error, token);
      }
    },
  };
}
