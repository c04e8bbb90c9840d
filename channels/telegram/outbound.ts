import { InputFile, type Api } from "grammy";
import type { Logger } from "pino";
import { DeliveryError } from "../../src/core/errors.ts";
import { truncate } from "../../src/core/split-text.ts";
import type { ChatKey, OutboundFile, SendOptions } from "../../src/core/types.ts";
import { isPrivateChat, parseTelegramChat, type TelegramChatRef } from "./chat-ref.ts";
import { describeError, isNotModifiedError, isParseEntitiesError, toChannelError } from "./errors.ts";
import { markdownToTelegramHtml } from "./format.ts";

/** Telegram's limits for a document a bot sends: 50 MB of file, 1024 characters of caption. */
const MAX_UPLOAD_BYTES = 50 * 1024 * 1024;
const MAX_CAPTION = 1024;

/**
 * Sending, editing, drafts, "typing…" and documents. Text arrives as Markdown, goes out as Telegram HTML with link
 * previews off; if Telegram still cannot parse the HTML, the same text is sent again without a parse mode, so
 * nothing is lost. A document's caption is plain text.
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
    ...business(ref),
  });
  /** A chat of a business account is answered through its connection. */
  const business = (ref: TelegramChatRef) =>
    ref.businessConnectionId === undefined ? {} : { business_connection_id: ref.businessConnectionId };

  /** Buttons and the message replied to (a message id, or the platform message id `<chat>:<id>`). */
  const replyOptions = (opts: SendOptions | undefined) => {
    const replyTo = opts?.replyTo === undefined ? undefined : Number(opts.replyTo.split(":").pop());
    return {
      ...(opts?.buttons?.length
        ? { reply_markup: { inline_keyboard: [opts.buttons.map((b) => ({ text: b.label, callback_data: b.command }))] } }
        : {}),
      ...(replyTo !== undefined && Number.isInteger(replyTo)
        ? { reply_parameters: { message_id: replyTo, allow_sending_without_reply: true } }
        : {}),
    };
  };

  return {
    async send(chat: ChatKey, text: string, opts?: SendOptions): Promise<{ id: string }> {
      const ref = parseTelegramChat(chat);
      try {
        const sent = await withPlainFallback(text, (body, html) =>
          api.sendMessage(ref.chatId, body, {
            ...common(ref, html),
            link_preview_options: { is_disabled: true },
            ...replyOptions(opts),
          }),
        );
        return { id: String(sent.message_id) };
      } catch (error) {
        throw toChannelError(error, token);
      }
    },

    /**
     * One document (sendDocument, uploaded as multipart/form-data by grammY). Telegram takes the file's type from its
     * name, so `file.mimeType` is not sent. The bytes stay in memory, so auto-retry can upload them again after a 429.
     */
    async sendFile(chat: ChatKey, file: OutboundFile, opts?: SendOptions): Promise<{ id: string }> {
      const ref = parseTelegramChat(chat);
      if (file.bytes.length > MAX_UPLOAD_BYTES) {
        throw new DeliveryError(`the file is ${file.bytes.length} bytes; Telegram takes at most 50 MB from a bot`, false);
      }
      const caption = file.caption === undefined || file.caption.trim() === "" ? undefined : truncate(file.caption, MAX_CAPTION);
      try {
        const sent = await api.sendDocument(ref.chatId, new InputFile(file.bytes, uploadName(file.name)), {
          ...common(ref, false),
          ...(caption === undefined ? {} : { caption }),
          ...replyOptions(opts),
        });
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
            ...business(ref),
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

/**
 * The name as it goes into the multipart header: grammY writes it unquoted and refuses line breaks, so control
 * characters, quotes, backslashes and ";" (which would end the header's value) become "_".
 */
function uploadName(name: string): string {
  const safe = name.replace(/[\u0000-\u001f\u007f";\\]/g, "_").trim();
  return safe === "" ? "file" : safe;
}
