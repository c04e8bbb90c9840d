import type { Router } from "express";
import type { Logger } from "pino";
import { DeliveryError } from "../../src/core/errors.ts";
import { isKey, parseKey } from "../../src/core/keys.ts";
import type { ChannelAdapter, ChannelStatus, ChatKey, OnMessage, OutboundFile } from "../../src/core/types.ts";
import { createChatMemory, type ChatMemory } from "./chat-memory.ts";
import { describeError } from "./errors.ts";
import { GRAPH_API_ROOT, createGraphClient, type GraphClient } from "./graph-client.ts";
import { deliverOutcomes, type InboundOutcome } from "./inbound.ts";
import { assertSendableFile } from "./outbound-file.ts";
import { assertWebhookSecrets, createMetaWebhookRouter } from "./webhook.ts";

/** What a Meta channel is configured with; `variables` in its spec names the variables that hold each secret. */
export interface MetaChannelDeps {
  /** What Meta echoes in the subscription handshake. */
  verifyToken: string;
  /** The Meta app secret that signs webhook bodies. */
  appSecret: string;
  /** The access token the Graph API is called with. */
  token: string;
  /** Default https://graph.facebook.com/v23.0. */
  graphApiRoot?: string;
  log: Logger;
  fetch?: typeof fetch;
  clock?: () => Date;
  /** Per Graph call; default 15 s. */
  timeoutMs?: number;
}

/** What sets one Meta channel apart from the other in the parts they share. */
export interface MetaChannelSpec {
  name: "messenger" | "whatsapp-cloud";
  /** "Messenger" or "WhatsApp": in Graph errors, refusals and payload logs. */
  platform: string;
  /** "Messenger" or "WhatsApp Cloud": in lifecycle logs and errors. */
  title: string;
  /** The configuration variables, named in errors (never their values). */
  variables: { appSecret: string; verifyToken: string; token: string };
  /** What a platform id in this channel's chat keys looks like. */
  chatId: RegExp;
  maxText: number;
  /** The status detail while receiving, e.g. "webhook". */
  runningDetail: string;
  /** Markdown → the platform's text; the Markdown itself is sent when the rendering is empty or over `maxText`. */
  render(markdown: string): string;
  /** A verified webhook payload → one outcome per item. Pure and never throws by design. */
  normalize(payload: unknown, now: Date): InboundOutcome[];
}

/** The shared half of a Meta channel; the channel adds its recipient check, its Graph calls and its downloads. */
export interface MetaChannel {
  graph: GraphClient;
  memory: ChatMemory;
  clock: () => Date;
  /** The channel's logger (never given the token). */
  log: Logger;
  start: ChannelAdapter["start"];
  status: ChannelAdapter["status"];
  /** The platform id of one of this channel's chats; refuses (final) any other key before Graph is called. */
  recipient(chat: ChatKey, operation: string): string;
  /**
   * The body to send for `text`: refuses (final) a text over `maxText`, an empty one, and one into a 24-hour window
   * known to be closed, without calling Graph.
   */
  textToSend(chat: ChatKey, text: string): string;
  /**
   * Refuses (final) an empty file, one over `maxBytes`, one without a plain MIME type, and one into a 24-hour window
   * known to be closed, without calling Graph.
   */
  checkFile(chat: ChatKey, file: OutboundFile, maxBytes: number): void;
  /** The webhook router the channel mounts. */
  router: Router;
}

/**
 * What Messenger and WhatsApp Cloud share beyond the Graph client and the webhook router: checked secrets, the
 * lifecycle (receiving from start() until the signal aborts, "failed" for good once Graph rejects the token), the
 * checks and rendering before a send, and the webhook handler that normalizes a payload and stores its messages.
 */
export function createMetaChannel(deps: MetaChannelDeps, spec: MetaChannelSpec): MetaChannel {
  const { platform, title, variables } = spec;
  assertWebhookSecrets(deps, variables);
  if (deps.token.trim() === "") throw new Error(`${variables.token} must be set to send ${platform} messages`);
  const log = deps.log.child({ channel: spec.name });
  const clock = deps.clock ?? (() => new Date());
  const memory = createChatMemory();

  let status: ChannelStatus = { state: "stopped", detail: "not started" };
  let deliver: OnMessage | undefined;
  let tokenRejected = false;

  const graph = createGraphClient({
    root: deps.graphApiRoot ?? GRAPH_API_ROOT,
    token: deps.token,
    tokenVariable: variables.token,
    platform,
    fetch: deps.fetch ?? fetch,
    ...(deps.timeoutMs === undefined ? {} : { timeoutMs: deps.timeoutMs }),
    onTokenRejected() {
      if (!tokenRejected) log.error(`${variables.token} was rejected by the Graph API; replies cannot be sent until it is replaced`);
      tokenRejected = true;
      status = { state: "failed", detail: `${variables.token} was rejected by the Graph API (error 190); set a valid token and restart` };
    },
  });

  const router = createMetaWebhookRouter({
    platform: title,
    verifyToken: deps.verifyToken,
    appSecret: deps.appSecret,
    log,
    isReady: () => deliver !== undefined,
    async handle(payload) {
      const onMessage = deliver;
      if (onMessage === undefined) throw new Error(`the ${title} channel stopped`);
      let outcomes;
      try {
        outcomes = spec.normalize(payload, clock());
      } catch (error) {
        // Cannot happen by design (the parsers never throw); if it does, the same payload would fail forever.
        log.error({ err: describeError(error, deps.token) }, `unreadable ${platform} payload skipped`);
        return;
      }
      if (outcomes.length === 0) log.debug(`${platform} payload without messages`);
      await deliverOutcomes(outcomes, { onMessage, memory, log });
    },
  });

  /** The window Meta enforces with error 131047 / 10+2018278, checked here when the last message is known. */
  const assertWindowOpen = (chat: ChatKey, operation: string) => {
    if (memory.windowClosed(chat, clock())) {
      throw new DeliveryError(`${platform} ${operation}: the 24-hour window closed (the user's last message is more than 24 hours old); not sent`, false);
    }
  };

  return {
    graph,
    memory,
    clock,
    log,
    router,

    async start(onMessage, signal) {
      if (deliver !== undefined) throw new Error(`the ${title} channel is already running`);
      if (signal.aborted) {
        status = { state: "stopped" };
        return;
      }
      deliver = onMessage;
      if (!tokenRejected) status = { state: "running", detail: spec.runningDetail };
      signal.addEventListener(
        "abort",
        () => {
          deliver = undefined;
          if (!tokenRejected) status = { state: "stopped" };
          log.info(`${title} channel stopped`);
        },
        { once: true },
      );
      log.info(`${title} channel receiving webhooks`);
    },

    status: () => ({ ...status }),

    recipient(chat, operation) {
      const parsed = isKey(chat) ? parseKey(chat) : undefined;
      if (parsed?.channel !== spec.name || !spec.chatId.test(parsed.id)) {
        throw new DeliveryError(`${platform} ${operation}: ${chat} is not a ${title} chat`, false);
      }
      return parsed.id;
    },

    textToSend(chat, text) {
      if (text.length > spec.maxText) {
        throw new DeliveryError(`${platform} send: ${text.length} characters exceed the limit of ${spec.maxText}`, false);
      }
      if (text.trim() === "") throw new DeliveryError(`${platform} send: the text is empty`, false);
      assertWindowOpen(chat, "send");
      const rendered = spec.render(text);
      return rendered.length <= spec.maxText && rendered.trim() !== "" ? rendered : text;
    },

    checkFile(chat, file, maxBytes) {
      assertSendableFile(file, platform, maxBytes);
      assertWindowOpen(chat, "send file");
    },
  };
}
