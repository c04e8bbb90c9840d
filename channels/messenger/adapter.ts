import type { Router } from "express";
import { DeliveryError } from "../../src/core/errors.ts";
import { tooLargeError } from "../../src/core/read-capped.ts";
import type { ChannelAdapter, ChatKey } from "../../src/core/types.ts";
import { createMetaChannel, type MetaChannelDeps } from "../meta/channel.ts";
import { REPLY_WINDOW_MS } from "../meta/chat-memory.ts";
import { describeError } from "../meta/errors.ts";
import { captionOf, displayName, fileBlob } from "../meta/outbound-file.ts";
import { markdownToPlainText } from "./format.ts";
import { normalizeMessengerPayload } from "./normalize.ts";

/** MESSENGER_VERIFY_TOKEN, MESSENGER_APP_SECRET and MESSENGER_PAGE_TOKEN (the Page access token). */
export type MessengerChannelDeps = MetaChannelDeps;

export interface MessengerChannel {
  adapter: ChannelAdapter;
  /** Mount at /webhooks/messenger. */
  router: Router;
}

export const MESSENGER_LIMITS = { maxText: 2000, canEdit: false, canDraft: false, replyWindowMs: REPLY_WINDOW_MS } as const;
/** typing_on lasts 20 s or until the reply: asking again sooner only costs Graph calls. */
const TYPING_EVERY_MS = 15_000;
/** The largest attachment the Send API takes. */
const MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024;

/**
 * The Facebook Messenger channel: webhooks in (channels/meta/webhook.ts checks the signature), the Send API
 * (`/me/messages`) out, as plain text with `messaging_type: RESPONSE` (a reply within the 24-hour window).
 * Attachments arrive as CDN URLs and are downloaded without the page token; a file goes out as a `file` attachment
 * uploaded with the message. The lifecycle, the checks before a send and the webhook handler are
 * channels/meta/channel.ts, shared with WhatsApp Cloud.
 */
export function createMessengerChannel(deps: MessengerChannelDeps): MessengerChannel {
  const meta = createMetaChannel(deps, {
    name: "messenger",
    platform: "Messenger",
    title: "Messenger",
    variables: { appSecret: "MESSENGER_APP_SECRET", verifyToken: "MESSENGER_VERIFY_TOKEN", token: "MESSENGER_PAGE_TOKEN" },
    chatId: /^\d{1,32}$/,
    maxText: MESSENGER_LIMITS.maxText,
    runningDetail: "webhook",
    render: markdownToPlainText,
    normalize: (payload, now) => normalizeMessengerPayload(payload, { now }),
  });
  const { graph, memory, clock, recipient, log } = meta;

  const sendText = async (chat: ChatKey, text: string) => {
    const id = recipient(chat, "send");
    const body = meta.textToSend(chat, text);
    const answer = await graph.call("send", "POST", "/me/messages", {
      recipient: { id },
      messaging_type: "RESPONSE",
      message: { text: body },
    });
    memory.noteSent(chat);
    return { id: messageId(answer, "send") };
  };

  const adapter: ChannelAdapter = {
    name: "messenger",
    limits: MESSENGER_LIMITS,
    start: meta.start,

    /** `replyTo` is not used: Messenger chats are one-to-one and the service quotes only in groups. */
    send: (chat, text) => sendText(chat, text),

    /**
     * The Send API with the file in the request (multipart: recipient, messaging_type, message with a `file`
     * attachment that is not kept for reuse, filedata). Messenger shows no caption on a file, so the caption follows
     * as a text message; the file is what was asked for, so a failed caption is logged, not thrown.
     */
    async sendFile(chat, file) {
      const id = recipient(chat, "send file");
      meta.checkFile(chat, file, MAX_ATTACHMENT_BYTES);
      const form = new FormData();
      form.append("recipient", JSON.stringify({ id }));
      form.append("messaging_type", "RESPONSE");
      form.append("message", JSON.stringify({ attachment: { type: "file", payload: { is_reusable: false } } }));
      form.append("filedata", fileBlob(file), displayName(file.name));
      const answer = await graph.call("send file", "POST", "/me/messages", form);
      memory.noteSent(chat);
      const sent = { id: messageId(answer, "send file") };
      const caption = captionOf(file, MESSENGER_LIMITS.maxText);
      if (caption !== undefined) {
        await sendText(chat, caption).catch((error: unknown) => {
          log.warn({ err: describeError(error, deps.token) }, "Messenger: the file was sent but its caption was not");
        });
      }
      return sent;
    },

    async typing(chat) {
      const id = recipient(chat, "typing");
      const now = clock();
      if (memory.windowClosed(chat, now) || !memory.typingDue(chat, now, TYPING_EVERY_MS)) return;
      await graph.call("typing", "POST", "/me/messages", { recipient: { id }, sender_action: "typing_on" });
    },

    /** Streams the attachment's CDN URL (http(s) only, never with the page token), stopping past `maxBytes`. */
    async download(attachment, maxBytes, signal) {
      if (attachment.sizeBytes !== undefined && attachment.sizeBytes > maxBytes) throw tooLargeError(maxBytes, attachment.sizeBytes);
      return graph.download(attachment.ref, maxBytes, signal, false);
    },

    status: meta.status,
  };

  return { adapter, router: meta.router };
}

/** The id of a sent message: `{ recipient_id, message_id }`. */
function messageId(answer: unknown, operation: string): string {
  const id = (answer as { message_id?: unknown } | null)?.message_id;
  if (typeof id !== "string") throw new DeliveryError(`Messenger ${operation}: Graph answered without a message id`, false);
  return id;
}
