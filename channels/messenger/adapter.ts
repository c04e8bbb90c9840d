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
import { markdownToPlainText } from "./format.ts";
import { normalizeMessengerPayload } from "./normalize.ts";

export interface MessengerChannelDeps {
  /** MESSENGER_VERIFY_TOKEN: what Meta echoes in the subscription handshake. */
  verifyToken: string;
  /** MESSENGER_APP_SECRET: the Meta app secret that signs webhook bodies. */
  appSecret: string;
  /** MESSENGER_PAGE_TOKEN: the Page access token the Send API is called with. */
  token: string;
  /** Default https://graph.facebook.com/v23.0. */
  graphApiRoot?: string;
  log: Logger;
  fetch?: typeof fetch;
  clock?: () => Date;
  /** Per Graph call; default 15 s. */
  timeoutMs?: number;
}

export interface MessengerChannel {
  adapter: ChannelAdapter;
  /** Mount at /webhooks/messenger. */
  router: Router;
}

export const MESSENGER_LIMITS = { maxText: 2000, canEdit: false, canDraft: false } as const;
/** typing_on lasts 20 s or until the reply: asking again sooner only costs Graph calls. */
const TYPING_EVERY_MS = 15_000;
const TOKEN_VARIABLE = "MESSENGER_PAGE_TOKEN";

/**
 * The Facebook Messenger channel: webhooks in (channels/meta/webhook.ts checks the signature), the Send API
 * (`/me/messages`) out, as plain text with `messaging_type: RESPONSE` (a reply within the 24-hour window).
 * Attachments arrive as CDN URLs and are downloaded without the page token.
 */
export function createMessengerChannel(deps: MessengerChannelDeps): MessengerChannel {
  assertWebhookSecrets(deps, { appSecret: "MESSENGER_APP_SECRET", verifyToken: "MESSENGER_VERIFY_TOKEN" });
  if (deps.token.trim() === "") throw new Error(`${TOKEN_VARIABLE} must be set to send Messenger messages`);
  const { token } = deps;
  const log = deps.log.child({ channel: "messenger" });
  const clock = deps.clock ?? (() => new Date());
  const memory = createChatMemory();

  let status: ChannelStatus = { state: "stopped", detail: "not started" };
  let deliver: OnMessage | undefined;
  let tokenRejected = false;

  const graph = createGraphClient({
    root: deps.graphApiRoot ?? GRAPH_API_ROOT,
    token,
    tokenVariable: TOKEN_VARIABLE,
    platform: "Messenger",
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
    if (parsed?.channel !== "messenger" || !/^\d{1,32}$/.test(parsed.id)) {
      throw new DeliveryError(`Messenger ${operation}: ${chat} is not a Messenger chat`, false);
    }
    return parsed.id;
  }

  const adapter: ChannelAdapter = {
    name: "messenger",
    limits: MESSENGER_LIMITS,

    async start(onMessage, signal) {
      if (deliver !== undefined) throw new Error("the Messenger channel is already running");
      if (signal.aborted) {
        status = { state: "stopped" };
        return;
      }
      deliver = onMessage;
      if (!tokenRejected) status = { state: "running", detail: "webhook" };
      signal.addEventListener(
        "abort",
        () => {
          deliver = undefined;
          if (!tokenRejected) status = { state: "stopped" };
          log.info("Messenger channel stopped");
        },
        { once: true },
      );
      log.info("Messenger channel receiving webhooks");
    },

    /** `replyTo` is not used: Messenger chats are one-to-one and the service quotes only in groups. */
    async send(chat, text) {
      const id = recipient(chat, "send");
      if (text.length > MESSENGER_LIMITS.maxText) {
        throw new DeliveryError(`Messenger send: ${text.length} characters exceed the limit of ${MESSENGER_LIMITS.maxText}`, false);
      }
      if (text.trim() === "") throw new DeliveryError("Messenger send: the text is empty", false);
      if (memory.windowClosed(chat, clock())) {
        throw new DeliveryError("Messenger send: the 24-hour window closed (the user's last message is more than 24 hours old); not sent", false);
      }
      const plain = markdownToPlainText(text);
      const body = plain.length <= MESSENGER_LIMITS.maxText && plain.trim() !== "" ? plain : text;
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
      if (attachment.sizeBytes !== undefined && attachment.sizeBytes > maxBytes) throw fileTooLarge(maxBytes, attachment.sizeBytes);
      return graph.download(attachment.ref, maxBytes, signal, false);
    },

    status: () => ({ ...status }),
  };

  const router = createMetaWebhookRouter({
    platform: "Messenger",
    verifyToken: deps.verifyToken,
    appSecret: deps.appSecret,
    log,
    isReady: () => deliver !== undefined,
    async handle(payload) {
      const onMessage = deliver;
      if (onMessage === undefined) throw new Error("the Messenger channel stopped");
      let outcomes;
      try {
        outcomes = normalizeMessengerPayload(payload, { now: clock() });
      } catch (error) {
        log.error({ err: describeError(error, token) }, "unreadable Messenger payload skipped");
        return;
      }
      await deliverOutcomes(outcomes, { onMessage, memory, log });
    },
  });

  return { adapter, router };
}
