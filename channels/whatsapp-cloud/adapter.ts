import type { Router } from "express";
import { DeliveryError } from "../../src/core/errors.ts";
import { tooLargeError } from "../../src/core/read-capped.ts";
import type { ChannelAdapter } from "../../src/core/types.ts";
import { markdownToWhatsApp } from "../../src/core/whatsapp-markers.ts";
import { createMetaChannel, type MetaChannelDeps } from "../meta/channel.ts";
import { REPLY_WINDOW_MS } from "../meta/chat-memory.ts";
import { captionOf, displayName, fileBlob } from "../meta/outbound-file.ts";
import { normalizeWhatsAppPayload } from "./normalize.ts";

/** WHATSAPP_CLOUD_VERIFY_TOKEN, WHATSAPP_CLOUD_APP_SECRET, WHATSAPP_CLOUD_TOKEN (a system user token), and: */
export interface WhatsAppCloudChannelDeps extends MetaChannelDeps {
  /** WHATSAPP_CLOUD_PHONE_NUMBER_ID: the business phone number that receives and sends. */
  phoneNumberId: string;
}

export interface WhatsAppCloudChannel {
  adapter: ChannelAdapter;
  /** Mount at /webhooks/whatsapp. */
  router: Router;
}

export const WHATSAPP_CLOUD_LIMITS = { maxText: 4096, canEdit: false, canDraft: false, replyWindowMs: REPLY_WINDOW_MS } as const;
/** The indicator shows for up to 25 s or until the reply: asking again sooner only costs Graph calls. */
const TYPING_EVERY_MS = 20_000;
/** WhatsApp's limits for a document: 100 MB of file, 1024 characters of caption. */
const MAX_DOCUMENT_BYTES = 100 * 1024 * 1024;
const MAX_CAPTION = 1024;

/**
 * The official WhatsApp Cloud API channel: webhooks in (channels/meta/webhook.ts checks the signature), Graph
 * `/{phone-number-id}/messages` out. Replies are plain WhatsApp text with WhatsApp's own formatting markers; a file
 * is uploaded to `/{phone-number-id}/media` and sent as a document. The lifecycle, the checks before a send and the
 * webhook handler are channels/meta/channel.ts, shared with Messenger.
 */
export function createWhatsAppCloudChannel(deps: WhatsAppCloudChannelDeps): WhatsAppCloudChannel {
  const { phoneNumberId } = deps;
  const meta = createMetaChannel(deps, {
    name: "whatsapp-cloud",
    platform: "WhatsApp",
    title: "WhatsApp Cloud",
    variables: { appSecret: "WHATSAPP_CLOUD_APP_SECRET", verifyToken: "WHATSAPP_CLOUD_VERIFY_TOKEN", token: "WHATSAPP_CLOUD_TOKEN" },
    chatId: /^[\w.+-]{1,64}$/,
    maxText: WHATSAPP_CLOUD_LIMITS.maxText,
    runningDetail: `webhook for phone number id ${phoneNumberId}`,
    render: markdownToWhatsApp,
    normalize: (payload, now) => normalizeWhatsAppPayload(payload, { phoneNumberId, now }),
  });
  if (!/^\d+$/.test(phoneNumberId)) {
    throw new Error("WHATSAPP_CLOUD_PHONE_NUMBER_ID must be the numeric phone number id from the WhatsApp Manager");
  }
  const { graph, memory, clock, recipient } = meta;

  const adapter: ChannelAdapter = {
    name: "whatsapp-cloud",
    limits: WHATSAPP_CLOUD_LIMITS,
    start: meta.start,

    async send(chat, text, opts) {
      const to = recipient(chat, "send");
      const body = meta.textToSend(chat, text);
      const answer = await graph.call("send", "POST", `/${phoneNumberId}/messages`, {
        messaging_product: "whatsapp",
        recipient_type: "individual",
        to,
        type: "text",
        text: { preview_url: false, body },
        ...(opts?.replyTo ? { context: { message_id: opts.replyTo } } : {}),
      });
      memory.noteSent(chat);
      return { id: messageId(answer, "send") };
    },

    /**
     * Uploads the bytes (multipart: messaging_product, type, file) for a media id, then sends that id as a document
     * with its file name and caption. The upload is kept by Meta for 30 days whether or not the send succeeds.
     */
    async sendFile(chat, file, opts) {
      const to = recipient(chat, "send file");
      meta.checkFile(chat, file, MAX_DOCUMENT_BYTES);
      const filename = displayName(file.name);
      const form = new FormData();
      form.append("messaging_product", "whatsapp");
      form.append("type", file.mimeType);
      form.append("file", fileBlob(file), filename);
      const uploaded = await graph.call("file upload", "POST", `/${phoneNumberId}/media`, form);
      const mediaId = (uploaded as { id?: unknown } | null)?.id;
      if (typeof mediaId !== "string" || mediaId === "") throw new DeliveryError("WhatsApp file upload: Graph answered without a media id", false);
      const caption = captionOf(file, MAX_CAPTION);
      const answer = await graph.call("send file", "POST", `/${phoneNumberId}/messages`, {
        messaging_product: "whatsapp",
        recipient_type: "individual",
        to,
        type: "document",
        document: { id: mediaId, filename, ...(caption === undefined ? {} : { caption }) },
        ...(opts?.replyTo ? { context: { message_id: opts.replyTo } } : {}),
      });
      memory.noteSent(chat);
      return { id: messageId(answer, "send file") };
    },

    /** Marks the user's last message read and shows "typing…"; skipped when that message is unknown (after a restart). */
    async typing(chat) {
      recipient(chat, "typing");
      const messageId = memory.lastInboundId(chat);
      if (messageId === undefined || memory.windowClosed(chat, clock())) return;
      if (!memory.typingDue(chat, clock(), TYPING_EVERY_MS)) return;
      await graph.call("typing", "POST", `/${phoneNumberId}/messages`, {
        messaging_product: "whatsapp",
        status: "read",
        message_id: messageId,
        typing_indicator: { type: "text" },
      });
    },

    /** Asks Graph for the media's URL and size, refuses it over `maxBytes`, then streams it with the token. */
    async download(attachment, maxBytes, signal) {
      if (attachment.sizeBytes !== undefined && attachment.sizeBytes > maxBytes) throw tooLargeError(maxBytes, attachment.sizeBytes);
      if (!/^[\w.-]{1,128}$/.test(attachment.ref)) throw new DeliveryError("WhatsApp download: not a media id", false);
      const media = (await graph.call("media lookup", "GET", `/${attachment.ref}`, undefined, signal)) as { url?: unknown; file_size?: unknown };
      const size = Number(media.file_size ?? Number.NaN);
      if (Number.isFinite(size) && size > maxBytes) throw tooLargeError(maxBytes, size);
      if (typeof media.url !== "string") throw new DeliveryError("WhatsApp download: Graph gave no URL for the media", false);
      return graph.download(media.url, maxBytes, signal, true);
    },

    status: meta.status,
  };

  return { adapter, router: meta.router };
}

/** The wamid of a sent message: `{ messages: [{ id }] }`. */
function messageId(answer: unknown, operation: string): string {
  const id = (answer as { messages?: Array<{ id?: unknown }> } | null)?.messages?.[0]?.id;
  if (typeof id !== "string") throw new DeliveryError(`WhatsApp ${operation}: Graph answered without a message id`, false);
  return id;
}
