import type { Router } from "express";
import { DeliveryError } from "../../src/core/errors.ts";
import { tooLargeError } from "../../src/core/read-capped.ts";
import type { ChannelAdapter } from "../../src/core/types.ts";
import { createMetaChannel, type MetaChannelDeps } from "../meta/channel.ts";
import { markdownToPlainText } from "./format.ts";
import { normalizeMessengerPayload } from "./normalize.ts";

/** MESSENGER_VERIFY_TOKEN, MESSENGER_APP_SECRET and MESSENGER_PAGE_TOKEN (the Page access token). */
export type MessengerChannelDeps = MetaChannelDeps;

export interface MessengerChannel {
  adapter: ChannelAdapter;
  /** Mount at /webhooks/messenger. */
  router: Router;
}

export const MESSENGER_LIMITS = { maxText: 2000, canEdit: false, canDraft: false } as const;
/** typing_on lasts 20 s or until the reply: asking again sooner only costs Graph calls. */
const TYPING_EVERY_MS = 15_000;

/**
 * The Facebook Messenger channel: webhooks in (channels/meta/webhook.ts checks the signature), the Send API
 * (`/me/messages`) out, as plain text with `messaging_type: RESPONSE` (a reply within the 24-hour window).
 * Attachments arrive as CDN URLs and are downloaded without the page token. The lifecycle, the checks before a
 * send and the webhook handler are channels/meta/channel.ts, shared with WhatsApp Cloud.
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
  const { graph, memory, clock, recipient } = meta;

  const adapter: ChannelAdapter = {
    name: "messenger",
    limits: MESSENGER_LIMITS,
    start: meta.start,

    /** `replyTo` is not used: Messenger chats are one-to-one and the service quotes only in groups. */
    async send(chat, text) {
      const id = recipient(chat, "send");
      const body = meta.textToSend(chat, text);
      const answer = await graph.call("send", "POST", "/me/messages", {
        recipient: { id },
        messaging_type: "RESPONSE",
        message: { text: body },
      });
      memory.noteSent(chat);
      const messageId = (answer as { message_id?: unknown }).message_id;
      if (typeof messageId !== "string") throw new DeliveryError("Messenger send: Graph answered without a message id", false);
      return { id: messageId };
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
