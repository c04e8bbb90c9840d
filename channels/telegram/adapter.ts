import { autoRetry } from "@grammyjs/auto-retry";
import { sequentialize } from "@grammyjs/runner";
import { apiThrottler, type APIThrottlerOptions } from "@grammyjs/transformer-throttler";
// The throttler runs on Bottleneck: with its in-process yields made quick (see src/core/bottleneck.ts).
import "../../src/core/bottleneck.ts";
import { Bot, type Transformer } from "grammy";
import type { UserFromGetMe } from "grammy/types";
import type { RequestHandler } from "express";
import type { Logger } from "pino";
import type { ChannelAdapter, ChannelStatus, OnMessage } from "../../src/core/types.ts";
import { downloadTelegramFile } from "./download.ts";
import { describeError, isTokenRejected, isTransient } from "./errors.ts";
import { floodWait, type PauseStore } from "./flood-wait.ts";
import { normalizeUpdate } from "./normalize.ts";
import { updateShapeProblem } from "./update-shape.ts";
import { createOutbound } from "./outbound.ts";
import { pollDurably, sleep } from "./polling.ts";
import { toGrammySignal } from "./signal.ts";
import { assertWebhookSecret, createWebhookHandler } from "./webhook.ts";

export interface TelegramChannelDeps {
  token: string;
  /** Bot API server root without a trailing slash; default https://api.telegram.org. */
  apiRoot?: string;
  /** Webhook mode instead of long polling; refused without a secret. */
  webhook?: { url: string; secret: string };
  log: Logger;
  /** Used for the Bot API calls and file downloads; default: grammY's client and the global fetch. */
  fetch?: typeof fetch;
  /** Bottleneck options of the outbound throttler (e.g. a Redis datastore shared by several processes); default:
   * transformer-throttler's own limits, kept in this process. */
  throttler?: APIThrottlerOptions;
  /** Where the pause after a 429 is kept (e.g. Redis, so that it holds for every process sending for this bot);
   * default: this process's memory. */
  pause?: PauseStore;
}

export interface TelegramChannel {
  adapter: ChannelAdapter;
  /** Present in webhook mode: mount it at `POST /webhooks/telegram`. */
  webhookHandler?: RequestHandler;
}

/** New messages, and taps on the bot's buttons (the /mode choices). */
const ALLOWED_UPDATES = ["message", "edited_message", "business_message", "edited_business_message", "callback_query"] as const;

/**
 * The Telegram channel (grammY). Long polling by default, webhook when configured. Either way an update is
 * acknowledged to Telegram only after onMessage resolved (see polling.ts and webhook.ts for how).
 *
 * `limits` are static: canDraft is true, and draft() in a group chat (negative chat id) resolves without doing
 * anything, since Telegram has drafts only in private chats. A forum topic is its own chat key
 * (`telegram:<chat_id>:<thread_id>`) and replies go into the topic.
 */
export function createTelegramChannel(deps: TelegramChannelDeps): TelegramChannel {
  if (deps.webhook) assertWebhookSecret(deps.webhook.secret);
  const { token } = deps;
  const apiRoot = (deps.apiRoot ?? "https://api.telegram.org").replace(/\/+$/, "");
  const log = deps.log.child({ channel: "telegram" });
  const bot = new Bot(token, { client: { apiRoot, ...(deps.fetch ? { fetch: deps.fetch as never } : {}) } });

  // Outbound pacing: the throttler queues per chat (1/s, 20/min in groups, 30/s overall); auto-retry waits out a
  // 429's retry_after (at most 60 s, 3 times) and retries 5xx. Network errors surface at once as retryable
  // DeliveryErrors: the conversation service decides. "typing…" and drafts skip the queue: a draft is a preview that
  // the reply stream already paces (one call in flight, ≥400 ms apart), and queued behind the per-chat 1/s limit it
  // would hold the final message back by a second (measured by the benchmark: p50 added latency 1,045 ms → 34 ms).
  const UNTHROTTLED = new Set(["sendChatAction", "sendMessageDraft"]);
  const throttle = apiThrottler(deps.throttler);
  const throttleMessages: Transformer = (prev, method, payload, signal) =>
    UNTHROTTLED.has(method) ? prev(method, payload, signal) : throttle(prev, method, payload, signal);
  // A 429 holds back every call of this bot until its retry_after has passed (innermost, so nothing slips by), in
  // every process of the bot when `deps.pause` is shared.
  bot.api.config.use(floodWait(deps.pause ? { store: deps.pause } : {}));
  bot.api.config.use(throttleMessages);
  bot.api.config.use(autoRetry({ maxRetryAttempts: 3, maxDelaySeconds: 60, rethrowHttpErrors: true }));

  let status: ChannelStatus = { state: "starting" };
  let started = false;
  let deliver: OnMessage | undefined;

  // Updates of one chat are handled in order, different chats in parallel.
  bot.use(sequentialize((ctx) => (ctx.chat === undefined ? [] : String(ctx.chat.id))));
  bot.use(async (ctx) => {
    const problem = updateShapeProblem(ctx.update);
    if (problem !== null) {
      // Not what the Bot API documents: it would fail again on every delivery, so it is confirmed and dropped.
      log.warn({ updateId: ctx.update.update_id, problem }, "Telegram update with an unexpected shape ignored");
      return;
    }
    let message;
    try {
      message = normalizeUpdate(ctx.update, { id: ctx.me.id, username: ctx.me.username });
    } catch (error) {
      // A payload we cannot read would fail again on every delivery: log it and let it be confirmed.
      log.error({ updateId: ctx.update.update_id, err: describeError(error, token) }, "unreadable Telegram update skipped");
      return;
    }
    if (message === null) return;
    if (deliver === undefined) throw new Error("the Telegram channel is not running");
    await deliver(message);
    // Stop the button's spinner once the tap is stored; the answer itself comes as a message.
    if (ctx.callbackQuery) {
      await ctx.answerCallbackQuery().catch((error: unknown) =>
        log.debug({ updateId: ctx.update.update_id, err: describeError(error, token) }, "answerCallbackQuery failed"),
      );
    }
  });
  bot.catch((error) => {
    log.error({ updateId: error.ctx.update.update_id, err: describeError(error.error, token) }, "handling a Telegram update failed");
  });

  /** Calls `fn` until it succeeds, retrying network trouble; reports failure or the stop and returns undefined. */
  async function untilDone<T>(label: string, fn: () => Promise<T>, signal: AbortSignal, setStatus: (s: ChannelStatus) => void) {
    for (let backoff = 1000; ; backoff = Math.min(backoff * 2, 60_000)) {
      try {
        return await fn();
      } catch (error) {
        const detail = describeError(error, token).message;
        if (signal.aborted) {
          setStatus({ state: "stopped" });
        } else if (isTokenRejected(error)) {
          log.error({ err: describeError(error, token) }, "Telegram rejected the bot token");
          setStatus({ state: "failed", detail: `TELEGRAM_BOT_TOKEN was rejected by Telegram (${detail})` });
        } else if (isTransient(error)) {
          log.warn({ err: describeError(error, token), retryInMs: backoff }, `Telegram ${label} failed; retrying`);
          setStatus({ state: "starting", detail: `${label} failed, retrying: ${detail}` });
          const slept = await sleep(backoff, signal).then(() => true, () => false);
          if (slept) continue;
          setStatus({ state: "stopped" });
        } else {
          log.error({ err: describeError(error, token) }, `Telegram ${label} failed`);
          setStatus({ state: "failed", detail: `${label} failed: ${detail}` });
        }
        return undefined;
      }
    }
  }

  /** While polling, a message that cannot be stored yet is retried here, and its update stays unconfirmed. */
  function deliverUntilStored(onMessage: OnMessage, signal: AbortSignal): OnMessage {
    return async (message) => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await onMessage(message);
        } catch (error) {
          if (signal.aborted) throw error;
          const retryInMs = Math.min(250 * 2 ** (attempt - 1), 30_000);
          log.warn(
            { platformMessageId: message.platformMessageId, attempt, retryInMs, err: describeError(error, token) },
            "storing a Telegram message failed; retrying before confirming the update",
          );
          await sleep(retryInMs, signal);
        }
      }
    };
  }

  async function run(onMessage: OnMessage, signal: AbortSignal, setStatus: (s: ChannelStatus) => void) {
    const me: UserFromGetMe | undefined = await untilDone("getMe", () => bot.api.getMe(toGrammySignal(signal)), signal, setStatus);
    if (!me) return;
    bot.botInfo = me;
    if (deps.webhook) {
      const { url, secret } = deps.webhook;
      const set = await untilDone(
        "setWebhook",
        () => bot.api.setWebhook(url, { secret_token: secret, allowed_updates: [...ALLOWED_UPDATES] }, toGrammySignal(signal)),
        signal,
        setStatus,
      );
      if (!set) return;
      deliver = onMessage;
      log.info({ username: me.username }, "Telegram webhook set");
      setStatus({ state: "running", detail: `webhook as @${me.username}` });
      await new Promise((resolve) => (signal.aborted ? resolve(undefined) : signal.addEventListener("abort", resolve, { once: true })));
      deliver = undefined;
      setStatus({ state: "stopped" });
      return;
    }
    // getUpdates answers 409 while a webhook is set; deleting it keeps the pending updates.
    const deleted = await untilDone("deleteWebhook", () => bot.api.deleteWebhook({}, toGrammySignal(signal)), signal, setStatus);
    if (!deleted) return;
    deliver = deliverUntilStored(onMessage, signal);
    const running: ChannelStatus = { state: "running", detail: `long polling as @${me.username}` };
    log.info({ username: me.username }, "Telegram long polling started");
    setStatus(running);
    try {
      await pollDurably(
        {
          bot, log, token, allowedUpdates: ALLOWED_UPDATES,
          onTrouble: (detail) => setStatus(detail === undefined ? running : { state: "running", detail }),
        },
        signal,
      );
      setStatus({ state: "stopped" });
    } catch (error) {
      const detail = describeError(error, token).message;
      log.error({ err: describeError(error, token) }, "Telegram long polling stopped");
      setStatus({
        state: "failed",
        detail: isTokenRejected(error)
          ? `TELEGRAM_BOT_TOKEN was rejected by Telegram (${detail})`
          : /409/.test(detail)
            ? `another process receives this bot's updates (${detail})`
            : detail,
      });
    } finally {
      deliver = undefined;
    }
  }

  const outbound = createOutbound(bot.api, log, token);
  const adapter: ChannelAdapter = {
    name: "telegram",
    limits: { maxText: 4096, canEdit: true, canDraft: true },
    async start(onMessage, signal) {
      if (started) throw new Error("the Telegram channel was already started");
      started = true;
      let reported!: () => void;
      const firstReport = new Promise<void>((resolve) => (reported = resolve));
      const setStatus = (next: ChannelStatus) => {
        status = next;
        if (next.state !== "starting" || next.detail !== undefined) reported();
      };
      run(onMessage, signal, setStatus).catch((error: unknown) => {
        log.error({ err: describeError(error, token) }, "the Telegram channel stopped unexpectedly");
        setStatus({ state: "failed", detail: describeError(error, token).message });
      });
      await firstReport;
    },
    send: outbound.send,
    sendFile: outbound.sendFile,
    edit: outbound.edit,
    draft: outbound.draft,
    typing: outbound.typing,
    download: (attachment, maxBytes, signal) =>
      downloadTelegramFile({ api: bot.api, apiRoot, token, fetch: deps.fetch ?? fetch }, attachment, maxBytes, signal),
    status: () => ({ ...status }),
  };

  const webhookHandler = deps.webhook
    ? createWebhookHandler({
        secret: deps.webhook.secret,
        log,
        token,
        isReady: () => deliver !== undefined && bot.isInited(),
        handleUpdate: (update) => bot.handleUpdate(update),
      })
    : undefined;
  return webhookHandler ? { adapter, webhookHandler } : { adapter };
}
