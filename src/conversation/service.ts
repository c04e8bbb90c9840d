import type { ChannelAdapter, ChannelName } from "../core/types.ts";
import { DeliveryError, RateLimitedError, errorMessage } from "../core/errors.ts";
import type { Inbox, InboxItem } from "../inbox/inbox.ts";
import { capabilitiesOf } from "../models/capabilities.ts";
import { ModelUnavailableError, type ModelRouter } from "../models/router.ts";
import { estimateTokens } from "../models/tokens.ts";
import type { Logger } from "../observability/logger.ts";
import { type AccessPolicy, decideAccess } from "./access.ts";
import { FORGET_ASK, HELP_TEXT, parseCommand, type Command } from "./commands.ts";
import { buildPrompt, defaultSystemPrompt } from "./prompt.ts";
import { createReplyStream } from "./reply-stream.ts";
import type { ConversationStore, MessageRow } from "./store.ts";
import { foldIntoSummary } from "./summary.ts";

/**
 * The conversation service: what happens to one claimed inbox row. Policy, commands, history, the model call and
 * the delivery of the reply, each step recorded so that a retry continues where the last attempt stopped: a stored
 * user turn is not stored twice, a generated reply is delivered without a second model call.
 */

export interface ConversationServiceDeps {
  store: ConversationStore;
  inbox: Inbox;
  adapters: ReadonlyMap<ChannelName, ChannelAdapter>;
  /** Null when no model is configured: Parley still runs and says what to set. */
  router: ModelRouter | null;
  access: AccessPolicy;
  systemPrompt?: string;
  historyMaxTokens: number;
  log: Logger;
  clock?: () => Date;
  /** How often a failing message is tried before the user is told. */
  maxAttempts?: number;
  /** The first retry delay after a failure; it doubles with each attempt, up to a minute. */
  retryBaseMs?: number;
}

export const NO_MODEL_REPLY =
  "No model is configured yet. The operator should set MODELS_INSTANT (for example openai:gpt-5-mini) and the " +
  "provider's key (for example OPENAI_API_KEY), then restart Parley.";
export const MODEL_FAILED_REPLY =
  "Sorry, I couldn't get an answer from the model just now. Your message is saved; please send it again in a minute.";
export const GAVE_UP_REPLY = "Sorry, something went wrong while answering your message. Please send it again.";

const HISTORY_PAGE = 500;

export function createConversationService(deps: ConversationServiceDeps) {
  const { store, inbox, adapters, router, access, log } = deps;
  const clock = deps.clock ?? (() => new Date());
  const maxAttempts = deps.maxAttempts ?? 3;
  const retryBaseMs = deps.retryBaseMs ?? 2_000;
  const backoffMs = (attempts: number) => Math.min(60_000, retryBaseMs * 2 ** Math.max(0, attempts - 1));
  const budgetTokens = router
    ? Math.min(deps.historyMaxTokens, ...router.chain.map((ref) => Math.floor(capabilitiesOf(ref).contextWindow / 2)))
    : deps.historyMaxTokens;

  /** Sends a short, complete text (no preview) and returns when every chunk is delivered. */
  const say = async (adapter: ChannelAdapter, item: InboxItem, text: string) => {
    const reply = createReplyStream({ adapter, chat: item.message.chat, isGroup: item.message.isGroup, replyTo: replyTarget(item) });
    return reply.finish(text);
  };

  const deliverStored = async (adapter: ChannelAdapter, item: InboxItem, stored: MessageRow) => {
    const { messageIds } = await say(adapter, item, stored.text);
    await store.markDelivered(stored.id, messageIds);
  };

  const runCommand = async (adapter: ChannelAdapter, item: InboxItem, command: Command) => {
    const { message } = item;
    switch (command.type) {
      case "help":
        return say(adapter, item, HELP_TEXT);
      case "reset":
        await store.endConversation(message.user, message.chat);
        return say(adapter, item, "Started a new conversation. I won't use the earlier messages.");
      case "forget": {
        if (!command.confirmed) return say(adapter, item, FORGET_ASK);
        const { messages } = await store.forgetUser(message.user);
        log.info({ user: message.user, messages }, "user data forgotten on request");
        return say(adapter, item, "Done: everything stored about you is deleted.");
      }
      case "unknown":
        return say(adapter, item, `I don't know the command /${command.name}. Send /help to see what I understand.`);
    }
  };

  const answer = async (adapter: ChannelAdapter, item: InboxItem, signal: AbortSignal): Promise<"done" | "requeued"> => {
    const { message } = item;
    const conversation = await store.openConversation(message.user, message.chat);
    await store.addTurn({
      conversationId: conversation.id,
      inboxId: item.id,
      role: "user",
      text: message.text,
      tokens: estimateTokens(message.text),
    });
    if (!router) {
      await say(adapter, item, NO_MODEL_REPLY);
      return "done";
    }
    const recent = await store.recentTurns(conversation.id, conversation.summaryThroughId ?? 0, HISTORY_PAGE);
    const prompt = buildPrompt({
      system: deps.systemPrompt ?? defaultSystemPrompt(clock()),
      summary: conversation.summary,
      recent,
      budgetTokens,
    });

    const reply = createReplyStream({ adapter, chat: message.chat, isGroup: message.isGroup, replyTo: replyTarget(item) });
    let text: string;
    try {
      const result = await router.stream({
        system: prompt.system,
        messages: prompt.messages,
        signal,
        trace: { purpose: "answer", inboxId: item.id, userKey: message.user, mode: "instant" },
        onDelta: (delta) => reply.push(delta),
        onReset: () => reply.reset(),
      });
      text = result.text;
    } catch (error) {
      await reply.abort();
      if (signal.aborted) {
        await inbox.retryLater(item.id, "stopped while answering", 0);
        return "requeued";
      }
      if (!(error instanceof ModelUnavailableError)) throw error;
      if (item.attempts < maxAttempts) {
        log.warn({ inboxId: item.id, attempt: item.attempts, reason: error.message }, "no model answered; retrying later");
        await inbox.retryLater(item.id, error.message, backoffMs(item.attempts));
        return "requeued";
      }
      log.error({ inboxId: item.id, reason: error.message }, "no model answered; giving up on this message");
      await say(adapter, item, MODEL_FAILED_REPLY);
      await inbox.fail(item.id, error.message);
      return "requeued";
    }

    const stored = await store.addTurn({
      conversationId: conversation.id,
      inboxId: item.id,
      role: "assistant",
      text,
      tokens: estimateTokens(text),
      mode: "instant",
    });
    const { messageIds } = await reply.finish(text);
    await store.markDelivered(stored.id, messageIds);

    if (prompt.overflow && prompt.oldestIncludedId !== null) {
      await foldIntoSummary({ store, router, log, signal, conversation, beforeId: prompt.oldestIncludedId, userKey: message.user });
    }
    return "done";
  };

  const process = async (item: InboxItem, signal: AbortSignal): Promise<"done" | "ignored" | "requeued"> => {
    const { message } = item;
    const adapter = adapters.get(message.channel);
    if (!adapter) {
      await inbox.retryLater(item.id, `channel ${message.channel} is not running`, 60_000);
      return "requeued";
    }
    const prior = await store.replyFor(item.id);
    if (prior) {
      if (!prior.deliveredAt) await deliverStored(adapter, item, prior);
      return "done";
    }
    if (message.isGroup && !message.mentionsBot && !message.replyToBot) {
      await inbox.ignore(item.id, "group message not addressed to the bot");
      return "ignored";
    }
    if (item.attempts > maxAttempts + 2) {
      await say(adapter, item, GAVE_UP_REPLY);
      await inbox.fail(item.id, "too many attempts");
      return "requeued";
    }
    const user = await store.upsertUser(message, "pending");
    const decision = decideAccess(access, message, user.status);
    if (decision.type === "refused") {
      await say(adapter, item, decision.reply);
      await inbox.ignore(item.id, "sender not allowed");
      return "ignored";
    }
    const command = parseCommand(message.text);
    if (command) {
      await runCommand(adapter, item, command);
      return "done";
    }
    if (message.text.trim() === "") {
      await say(adapter, item, "I can only read text messages for now. Please write your question.");
      return "done";
    }
    return answer(adapter, item, signal);
  };

  return {
    /** Handles one claimed row. Never throws for a problem of this message; rethrows only when the database fails. */
    async handle(item: InboxItem, signal: AbortSignal): Promise<void> {
      try {
        const outcome = await process(item, signal);
        if (outcome === "done") await inbox.complete(item.id);
      } catch (error) {
        if (error instanceof RateLimitedError) {
          log.warn({ inboxId: item.id, retryAfterMs: error.retryAfterMs }, "platform rate limit; delivery postponed");
          await inbox.retryLater(item.id, error.message, error.retryAfterMs);
        } else if (error instanceof DeliveryError && !error.retryable) {
          log.warn({ inboxId: item.id, err: error }, "reply cannot be delivered");
          await inbox.fail(item.id, error.message);
        } else {
          log.error({ inboxId: item.id, chat: item.message.chat, err: error }, "message handling failed; will retry");
          await inbox.retryLater(item.id, errorMessage(error), backoffMs(item.attempts));
        }
      }
    },
  };
}

function replyTarget(item: InboxItem): string | undefined {
  return item.message.isGroup ? item.message.platformMessageId : undefined;
}
