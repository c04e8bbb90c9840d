import type { Router } from "express";
import type { Logger } from "pino";
import { DeliveryError } from "../../src/core/errors.ts";
import { isKey, parseKey } from "../../src/core/keys.ts";
import type { ChannelAdapter, ChannelStatus, ChatKey, OnMessage } from "../../src/core/types.ts";
import { createChatMemory } from "../meta/chat-memory.ts";
import { describeError } from "../meta/errors.ts";
import { GRAPH_API_ROOT, createGraphClient, fileTooLarge } from "../meta/graph-client.ts";
import { deliverOutcomes } from "../meta/inbound.ts";
import { assertWebhookSecrets, createMetaWebhookRouter } from "../meta/webhook.ts";
import { markdownToWhatsApp } from "./format.ts";
import { normalizeWhatsAppPayload } from "./normalize.ts";

export interface WhatsAppCloudChannelDeps {
  /** WHATSAPP_CLOUD_VERIFY_TOKEN: what Meta echoes in the subscription handshake. */
  verifyToken: string;
  /** WHATSAPP_CLOUD_APP_SECRET: the Meta app secret that signs webhook bodies. */
  appSecret: string;
  /** WHATSAPP_CLOUD_TOKEN: the access token for the Graph API (a system user token). */
  token: string;
  /** WHATSAPP_CLOUD_PHONE_NUMBER_ID: the business phone number that receives and sends. */
  phoneNumberId: string;
  /** Default https://graph.facebook.com/v23.0. */
  graphApiRoot?: string;
  log: Logger;
  fetch?: typeof fetch;
  clock?: () => Date;
  /** Per Graph call; default 15 s. */
  timeoutMs?: number;
}

export interface WhatsAppCloudChannel {
  adapter: ChannelAdapter;
  /** Mount at /webhooks/whatsapp. */
  router: Router;
}

export const WHATSAPP_CLOUD_LIMITS = { maxText: 4096, canEdit: false, canDraft: false } as const;
/** The indicator shows for up to 25 s or until the reply: asking again sooner only costs Graph calls. */
const TYPING_EVERY_MS = 20_000;
const TOKEN_VARIABLE = "WHATSAPP_CLOUD_TOKEN";

/**
 * The official WhatsApp Cloud API channel: webhooks in (channels/meta/webhook.ts checks the signature), Graph
 * `/{phone-number-id}/messages` out. Replies are plain WhatsApp text with WhatsApp's own formatting markers.
 */
export function createWhatsAppCloudChannel(deps: WhatsAppCloudChannelDeps): WhatsAppCloudChannel {
  assertWebhookSecrets(deps, { appSecret: "WHATSAPP_CLOUD_APP_SECRET", verifyToken: "WHATSAPP_CLOUD_VERIFY_TOKEN" });
  if (deps.token.trim() === "") throw new Error(`${TOKEN_VARIABLE} must be set to send WhatsApp messages`);
  if (!/^\d+$/.test(deps.phoneNumberId)) {
    throw new Error("WHATSAPP_CLOUD_PHONE_NUMBER_ID must be the numeric phone number id from the WhatsApp Manager");
  }
  const { token, phoneNumberId } = deps;
  const log = deps.log.child({ channel: "whatsapp-cloud" });
  const clock = deps.clock ?? (() => new Date());
  const memory = createChatMemory();

  let status: ChannelStatus = { state: "stopped", detail: "not started" };
  let deliver: OnMessage | undefined;
  let tokenRejected = false;

  const graph = createGraphClient({
    root: deps.graphApiRoot ?? GRAPH_API_ROOT,
    token,
    tokenVariable: TOKEN_VARIABLE,
    platform: "WhatsApp",
    fetch: deps.fetch ?? fetch,
    ...(deps.timeoutMs === undefined ? {} : { timeoutMs: deps.timeoutMs }),
    onTokenRejected() {
      if (!tokenRejected) log.error(`${TOKEN_VARIABLE} was rejected by the Graph API; replies cannot be sent until it is replaced`);
      tokenRejected = true;
      status = { state: "failed", detail: `${TOKEN_VARIABLE} was rejected by the Graph API (error 190); set a valid token and restart` };
    },
  });

  function recipient(chat: ChatKey, operation: string): string {
    const parsed = isKey(chat) ? parseKey(chat) : undefined;
    if (parsed?.channel !== "whatsapp-cloud" || !/^[\w.+-]{1,64}$/.test(parsed.id)) {
      throw new DeliveryError(`WhatsApp ${operation}: ${chat} is not a WhatsApp Cloud chat`, false);
    }
    return parsed.id;
  }

  const adapter: ChannelAdapter = {
    name: "whatsapp-cloud",
    limits: WHATSAPP_CLOUD_LIMITS,

    async start(onMessage, signal) {
      if (deliver !== undefined) throw new Error("the WhatsApp Cloud channel is already running");
      if (signal.aborted) {
        status = { state: "stopped" };
        return;
      }
      deliver = onMessage;
      if (!tokenRejected) status = { state: "running", detail: `webhook for phone number id ${phoneNumberId}` };
      signal.addEventListener(
        "abort",
        () => {
          deliver = undefined;
          if (!tokenRejected) status = { state: "stopped" };
          log.info("WhatsApp Cloud channel stopped");
        },
        { once: true },
      );
      log.info("WhatsApp Cloud channel receiving webhooks");
    },

    async send(chat, text, opts) {
      const to = recipient(chat, "send");
      if (text.length > WHATSAPP_CLOUD_LIMITS.maxText) {
        throw new DeliveryError(`WhatsApp send: ${text.length} characters exceed the limit of ${WHATSAPP_CLOUD_LIMITS.maxText}`, false);
      }
      if (text.trim() === "") throw new DeliveryError("WhatsApp send: the text is empty", false);
      if (memory.windowClosed(chat, clock())) {
        throw new DeliveryError("WhatsApp send: the 24-hour window closed (the user's last message is more than 24 hours old); not sent", false);
      }
      const formatted = markdownToWhatsApp(text);
      const body = formatted.length <= WHATSAPP_CLOUD_LIMITS.maxText && formatted.trim() !== "" ? formatted : text;
      const answer = await graph.call("send", "POST", `/${phoneNumberId}/messages`, {
        messaging_product: "whatsapp",
        recipient_type: "individual",
        to,
        type: "text",
        text: { preview_url: false, body },
        ...(opts?.replyTo ? { context: { message_id: opts.replyTo } } : {}),
      });
      memory.noteSent(chat);
      const id = (answer as { messages?: Array<{ id?: unknown }> }).messages?.[0]?.id;
      if (typeof id !== "string") throw new DeliveryError("WhatsApp send: Graph answered without a message id", false);
      return { id };
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
      if (attachment.sizeBytes !== undefined && attachment.sizeBytes > maxBytes) throw fileTooLarge(maxBytes, attachment.sizeBytes);
      if (!/^[\w.-]{1,128}$/.test(attachment.ref)) throw new DeliveryError("WhatsApp download: not a media id", false);
      const meta = (await graph.call("media lookup", "GET", `/${attachment.ref}`, undefined, signal)) as { url?: unknown; file_size?: unknown };
      const size = Number(meta.file_size ?? Number.NaN);
      if (Number.isFinite(size) && size > maxBytes) throw fileTooLarge(maxBytes, size);
      if (typeof meta.url !== "string") throw new DeliveryError("WhatsApp download: Graph gave no URL for the media", false);
      return graph.download(meta.url, maxBytes, signal, true);
    },

    status: () => ({ ...status }),
  };

  const router = createMetaWebhookRouter({
    platform: "WhatsApp Cloud",
    verifyToken: deps.verifyToken,
    appSecret: deps.appSecret,
    log,
    isReady: () => deliver !== undefined,
    async handle(payload) {
      const onMessage = deliver;
      if (onMessage === undefined) throw new Error("the WhatsApp Cloud channel stopped");
      let outcomes;
      try {
        outcomes = normalizeWhatsAppPayload(payload, { phoneNumberId, now: clock() });
      } catch (error) {
        // Cannot happen by design (the parsers never throw); if it does, the same payload would fail forever.
        log.error({ err: describeError(error, token) }, "unreadable WhatsApp payload skipped");
        return;
      }
      if (outcomes.length === 0) log.debug("WhatsApp payload without messages");
      await deliverOutcomes(outcomes, { onMessage, memory, log });
    },
  });

  return { adapter, router };
}
