import type { Button, ChannelAdapter, ChannelName, InboundMessage, RepliedMessage } from "../core/types.ts";
import { DeliveryError, RateLimitedError, errorMessage } from "../core/errors.ts";
import { storageFailure } from "../db/failures.ts";
import type { Albums } from "../inbox/albums.ts";
import type { Inbox, InboxItem } from "../inbox/inbox.ts";
import { modelsOf, runMode, type CallLog, type ModeName, type ModeResult, type ModeSettings } from "../modes/index.ts";
import { requirementsOf, type ModelRouter } from "../models/router.ts";
import { estimateTokens } from "../models/tokens.ts";
import type { Logger } from "../observability/logger.ts";
import type { PublicFetchOptions } from "../tools/public-fetch.ts";
import { createToolSet } from "../tools/registry.ts";
import type { AccessGate, Refusal } from "../access/gate.ts";
import type { ChatCommands, CommandReply } from "../access/chat-commands.ts";
import { markForwarded, UNTRUSTED_RULE } from "../privacy/untrusted.ts";
import type { QuotaGuard } from "../quotas/guard.ts";
import type { UserLimiter } from "../quotas/user-limiter.ts";
import { ASK_EMPTY_TEXT, BAD_MODE_TEXT, FORGET_ASK, HELP_TEXT, modeButtons, modeText, parseCommand, type Command } from "./commands.ts";
import { buildPrompt, defaultSystemPrompt } from "./prompt.ts";
import { createReplyStream } from "./reply-stream.ts";
import type { ConversationStore, MessageRow, UserRow } from "./store.ts";
import { foldIntoSummary } from "./summary.ts";
import { withContext } from "./turn-context.ts";
import { messagesWithImages, prepareUserTurn, type MediaSupport, type UserTurnInput } from "./media-turns.ts";

/**
 * The conversation service: what happens to one claimed inbox row. Policy, commands, history, the mode that answers
 * (src/modes) and the delivery of the reply, each step recorded so that a retry continues where the last attempt
 * stopped: a stored user turn is not stored twice, a generated reply is delivered without a second model call.
 */

export interface ConversationServiceDeps {
  store: ConversationStore;
  inbox: Inbox;
  adapters: ReadonlyMap<ChannelName, ChannelAdapter>;
  /** Null when no model is configured: Parley still runs and says what to set. */
  router: ModelRouter | null;
  /** The modes' chains and limits; the instant chain alone when omitted. */
  modes?: ModeSettings;
  /** Tools offered to models that take them, and what they need. */
  tools?: { enabled: readonly string[]; timeZone: string; web?: Partial<PublicFetchOptions> };
  /** Who may talk (src/access): the policies, pairing codes, the once-an-hour notice. */
  access: AccessGate;
  /** Per-user quotas (src/quotas); no limits when omitted. */
  quotas?: QuotaGuard;
  /** One message of a user at a time, across chats (and processes with Redis); no such limit when omitted. */
  userLimiter?: UserLimiter;
  /** /usage, /export and the admins' commands (src/access/chat-commands.ts). */
  chatCommands?: ChatCommands;
  /** Images and voice; without it attachments are ignored and only the text is answered. */
  media?: MediaSupport;
  /** Gathers the parts of an album into one turn; without it each part is answered on its own. */
  albums?: Albums;
  systemPrompt?: string;
  historyMaxTokens: number;
  log: Logger;
  clock?: () => Date;
  /** Removes secrets from texts stored outside the router's own records. */
  scrub?: (text: string) => string;
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
/**
 * How long a reply may take before the user is shown "typing…" or a draft: too short to notice, long enough that a
 * command's answer or a fast model's costs one platform call, not three (and not three of Telegram's 30 a second).
 */
const REPLY_QUIET_MS = 300;
export const GAVE_UP_REPLY = "Sorry, something went wrong while answering your message. Please send it again.";

const HISTORY_PAGE = 500;

/**
 * How a row's handling ended: "done" is to be closed as answered; "closed" was closed already (with its reply's
 * delivery, in one statement); "ignored" and "requeued" were recorded as such.
 */
type Outcome = "done" | "closed" | "ignored" | "requeued";

export function createConversationService(deps: ConversationServiceDeps) {
  const { store, inbox, adapters, router, access, log } = deps;
  const clock = deps.clock ?? (() => new Date());
  const scrub = deps.scrub ?? ((text: string) => text);
  const maxAttempts = deps.maxAttempts ?? 3;
  const retryBaseMs = deps.retryBaseMs ?? 2_000;
  const backoffMs = (attempts: number) => Math.min(60_000, retryBaseMs * 2 ** Math.max(0, attempts - 1));
  const instantChain = router?.chain ?? [];
  const modes: ModeSettings = deps.modes ?? {
    chains: { instant: instantChain, thinking: instantChain, contemplating: [instantChain], synthesis: instantChain },
    contemplate: { agents: 3, agentTimeoutMs: 90_000, maxOutputTokens: 4_096, budgetTokens: 12_000 },
    maxSteps: 5,
  };
  const timeZone = deps.tools?.timeZone ?? "UTC";
  /** The history budget of a mode: the smallest context window among its models, halved, within the setting. */
  const budgetTokens = (mode: ModeName) =>
    router
      ? Math.min(deps.historyMaxTokens, ...modelsOf(mode, modes).map((ref) => Math.floor(router.capabilities(ref).contextWindow / 2)))
      : deps.historyMaxTokens;
  // Built once: the tools' schemas and closures are the same for every message.
  const tools =
    deps.tools && deps.tools.enabled.length > 0
      ? createToolSet(deps.tools.enabled, { now: clock, timeZone, web: deps.tools.web })
      : undefined;
  const calls: CallLog = {
    open: (call) => store.recordCall(call),
    close: (id, patch) => store.updateCall(id, { ...patch, error: patch.error === undefined ? undefined : scrub(patch.error) }),
  };

  /** Sends a short, complete text (no preview) and returns when every chunk is delivered. */
  const say = async (adapter: ChannelAdapter, item: InboxItem, text: string, buttons?: readonly Button[]) => {
    const { chat, isGroup } = item.message;
    const reply = createReplyStream({ adapter, chat, isGroup, replyTo: replyTarget(item), quietMs: REPLY_QUIET_MS, ...(buttons ? { buttons } : {}) });
    return reply.finish(text);
  };

  /** A command's answer: its file where the channel can send one, else the same content as text. */
  const sayOrSendFile = async (adapter: ChannelAdapter, item: InboxItem, reply: CommandReply) => {
    if (typeof reply === "string") return void (await say(adapter, item, reply));
    if (!adapter.sendFile) return void (await say(adapter, item, reply.text));
    const replyTo = replyTarget(item);
    try {
      await adapter.sendFile(item.message.chat, reply.file, replyTo ? { replyTo } : undefined);
    } catch (error) {
      // Refused for good (too large, a type the platform will not take): the text form still reaches the user.
      if (!(error instanceof DeliveryError) || error.retryable) throw error;
      log.warn({ inboxId: item.id, err: error }, "the platform refused the file; sending it as text");
      await say(adapter, item, reply.text);
    }
  };

  /** Tells the sender why, when they are to be told, and closes the row as ignored with the reason. */
  const refuse = async (adapter: ChannelAdapter, item: InboxItem, refusal: Refusal) => {
    if (refusal.reply) await say(adapter, item, refusal.reply);
    await inbox.ignore(item.id, refusal.reason);
    return "ignored" as const;
  };

  /** Sends a reply generated by an earlier attempt, and closes the row. */
  const deliverStored = async (adapter: ChannelAdapter, item: InboxItem, stored: MessageRow) => {
    const { messageIds } = await say(adapter, item, stored.text);
    await inbox.complete(item.id, { messageId: stored.id, platformIds: messageIds });
  };

  const runCommand = async (adapter: ChannelAdapter, item: InboxItem, command: Command, user: UserRow) => {
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
      case "mode":
        if (command.set) await store.setDefaultMode(message.user, command.set);
        return say(
          adapter,
          item,
          modeText(command.set ?? user.defaultMode, modes.contemplate.agents, command.set !== undefined),
          modeButtons(command.set ?? user.defaultMode),
        );
      case "bad-mode":
        return say(adapter, item, BAD_MODE_TEXT(command.given));
      case "ask":
        // Answered by `answer`; only an empty one gets here.
        return say(adapter, item, ASK_EMPTY_TEXT(command.mode));
      case "unknown":
        return say(adapter, item, `I don't know the command /${command.name}. Send /help to see what I understand.`);
    }
  };

  const answer = async (
    adapter: ChannelAdapter,
    item: InboxItem,
    signal: AbortSignal,
    mode: ModeName,
    turn: UserTurnInput,
  ): Promise<Outcome> => {
    const { message } = item;
    // The history as it was, then this turn in front of it (newest first); a retry finds the turn it stored before,
    // already among the history.
    const { conversation, recent: before } = await store.openConversationWithTurns(message.user, message.chat, HISTORY_PAGE);
    const asked = await store.addTurn({
      conversationId: conversation.id,
      inboxId: item.id,
      role: "user",
      text: turn.text,
      tokens: turn.tokens,
      media: turn.media,
    });
    if (!router) {
      await say(adapter, item, NO_MODEL_REPLY);
      return "done";
    }
    const recent = before.some((t) => t.id === asked.id)
      ? before
      : [{ id: asked.id, role: asked.role, text: asked.text, tokens: asked.tokens, media: asked.media }, ...before].slice(0, HISTORY_PAGE);
    const prompt = buildPrompt({
      system: deps.systemPrompt ? `${deps.systemPrompt}\n\n${UNTRUSTED_RULE}` : defaultSystemPrompt(clock(), timeZone),
      summary: conversation.summary,
      recent,
      budgetTokens: budgetTokens(mode),
    });

    const messages = (deps.media && (await messagesWithImages(deps.media, prompt.turns))) ?? prompt.messages;
    const reply = createReplyStream({ adapter, chat: message.chat, isGroup: message.isGroup, replyTo: replyTarget(item), quietMs: REPLY_QUIET_MS });
    let result: ModeResult;
    try {
      result = await runMode(mode, {
        router,
        settings: modes,
        system: prompt.system,
        messages,
        requires: requirementsOf(messages),
        tools,
        output: reply,
        signal,
        trace: { inboxId: item.id, userKey: message.user },
        calls,
        log,
      });
    } catch (error) {
      await reply.abort();
      if (signal.aborted) {
        await inbox.retryLater(item.id, "stopped while answering", 0);
        return "requeued";
      }
      throw error;
    }

    switch (result.type) {
      case "refused":
        await reply.abort();
        await say(adapter, item, result.reply);
        return "done";
      case "unavailable": {
        await reply.abort();
        if (item.attempts < maxAttempts) {
          log.warn({ inboxId: item.id, attempt: item.attempts, reason: result.reason }, "no model answered; retrying later");
          await inbox.retryLater(item.id, scrub(result.reason), backoffMs(item.attempts));
          return "requeued";
        }
        log.error({ inboxId: item.id, reason: result.reason }, "no model answered; giving up on this message");
        await say(adapter, item, MODEL_FAILED_REPLY);
        await inbox.fail(item.id, scrub(result.reason));
        return "requeued";
      }
      case "answer":
        break;
    }

    const stored = await store.addTurn({
      conversationId: conversation.id,
      inboxId: item.id,
      role: "assistant",
      text: result.text,
      tokens: estimateTokens(result.text),
      mode: result.mode,
    });
    // The stored text, cleaned as it was stored: the person reads what their history holds.
    const { messageIds } = await reply.finish(stored.text);
    // The call's record was written meanwhile: once the row is closed, the next message's quota check counts it.
    await router.recorded();
    await inbox.complete(item.id, { messageId: stored.id, platformIds: messageIds });

    if (prompt.overflow && prompt.oldestIncludedId !== null) {
      await foldIntoSummary({ store, router, log, signal, conversation, beforeId: prompt.oldestIncludedId, userKey: message.user });
    }
    return "closed";
  };

  const process = async (claimed: InboxItem, signal: AbortSignal): Promise<Outcome> => {
    const adapter = adapters.get(claimed.message.channel);
    if (!adapter) {
      await inbox.retryLater(claimed.id, `channel ${claimed.message.channel} is not running`, 60_000);
      return "requeued";
    }
    const album = deps.albums ? await deps.albums.collect(claimed) : { type: "ready" as const, item: claimed };
    if (album.type === "wait") return "requeued";
    const { item } = album;
    const { message } = item;
    // A reply can only exist from an earlier claim of this row (every claim counts an attempt).
    const prior = item.attempts > 1 ? await store.replyFor(item.id) : undefined;
    if (prior?.deliveredAt) return "done";
    if (!prior && message.isGroup && !message.mentionsBot && !message.replyToBot) {
      await inbox.ignore(item.id, "group message not addressed to the bot");
      return "ignored";
    }
    const window = adapter.limits.replyWindowMs;
    if (window !== undefined && clock().getTime() - message.receivedAt.getTime() > window - REPLY_WINDOW_MARGIN_MS) {
      // The platform would refuse the reply: no model call is spent on an answer nobody can receive.
      log.warn({ inboxId: item.id, channel: message.channel }, "the platform's reply window for this message has closed; not answered");
      await inbox.fail(item.id, "the platform's reply window closed before the message could be answered");
      return "requeued";
    }
    // Access is decided now, when the row is answered, not when it was received: a row waits in the inbox (behind its
    // chat's earlier messages, across a restart, for a retry of its delivery) while the sender may be blocked or the
    // group taken off GROUP_ALLOWLIST. A reply written before that is not delivered either.
    // The quota counts are read while the sender's row is (two connections, one round trip of waiting).
    const prefetched = prior ? undefined : deps.quotas?.prefetch(message.user, item.id);
    const user = await store.upsertUser(message, "pending");
    const denied = await access.decide(message, user.status);
    if (denied) return refuse(adapter, item, denied);
    if (prior) {
      await deliverStored(adapter, item, prior);
      return "closed";
    }
    if (item.attempts > maxAttempts + 2) {
      await say(adapter, item, GAVE_UP_REPLY);
      await inbox.fail(item.id, "too many attempts");
      return "requeued";
    }
    const admission = await deps.quotas?.admit(user, item.id, prefetched);
    if (admission?.refusal) return refuse(adapter, item, admission.refusal);
    if (message.unsupported && message.text.trim() === "" && message.attachments.length === 0 && !message.place) {
      // Nothing here a model could use: a person in a direct chat is told so, a group is not disturbed.
      if (message.isGroup) {
        await inbox.ignore(item.id, `${message.unsupported} in a group`);
        return "ignored";
      }
      await say(adapter, item, unsupportedReply(message.unsupported));
      return "done";
    }
    // Commands come from the sender's typed text only, never from a transcript, an image or a forwarded message.
    const command = message.forwarded ? null : parseCommand(message.text);
    const more = command?.type === "unknown" ? await deps.chatCommands?.run(command.name, command.args ?? "", message) : undefined;
    if (more !== undefined) {
      await sayOrSendFile(adapter, item, more);
      return "done";
    }
    const ask = command?.type === "ask" && (command.text !== "" || message.attachments.length > 0) ? command : undefined;
    if (command && !ask) {
      await runCommand(adapter, item, command, user);
      return "done";
    }
    const overQuota = await admission?.modelCall(ask ? ask.mode : user.defaultMode);
    if (overQuota) return refuse(adapter, item, overQuota);
    const own = ask ? ask.text : message.forwarded ? markForwarded(message.text) : message.text;
    const typed = withContext(own, { replyTo: await resolveReply(message), place: message.place });
    const turn = await userTurn(adapter, { ...message, text: typed }, signal);
    if (turn.retryable && item.attempts < maxAttempts) {
      await inbox.retryLater(item.id, "an attachment could not be fetched", backoffMs(item.attempts));
      return "requeued";
    }
    if (turn.text.trim() === "" && turn.media.length === 0) {
      await say(adapter, item, turn.refusals.join("\n") || "I can only read text, photos and voice messages. Please write your question.");
      return "done";
    }
    if (turn.refusals.length > 0) {
      await say(adapter, item, turn.refusals.join("\n"));
      // Nothing it sent could be used: its words were about that, and answered alone they would get a wrong answer.
      if (turn.media.length === 0 && turn.text === typed) return "done";
    }
    return answer(adapter, item, signal, ask ? ask.mode : user.defaultMode, turn);
  };

  /** A reply that names only the replied-to message's id gets its author and text from what this chat stored. */
  const resolveReply = async (message: InboundMessage): Promise<RepliedMessage | undefined> => {
    const reply = message.replyTo;
    if (!reply?.id || reply.text !== undefined || reply.kind !== undefined) return reply;
    const found = await store.messageInChat(message.channel, message.chat, reply.id);
    if (!found) return reply;
    const author = found.author === "bot" ? "bot" : found.user === message.user ? "sender" : "other";
    return { ...reply, author, text: found.text };
  };

  const userTurn = (adapter: ChannelAdapter, message: InboxItem["message"], signal: AbortSignal): Promise<UserTurnInput> =>
    deps.media
      ? prepareUserTurn(deps.media, message, adapter, signal, log)
      : Promise.resolve({ text: message.text, media: [], tokens: estimateTokens(message.text), refusals: [], retryable: false });

  return {
    /** Handles one claimed row. Never throws for a problem of this message; rethrows only when the database fails. */
    async handle(item: InboxItem, signal: AbortSignal): Promise<void> {
      try {
        const outcome = deps.userLimiter
          ? await deps.userLimiter.run(item.message.user, () => process(item, signal))
          : await process(item, signal);
        await router?.recorded();
        if (outcome === "done") await inbox.complete(item.id);
      } catch (error) {
        if (error instanceof RateLimitedError) {
          log.warn({ inboxId: item.id, retryAfterMs: error.retryAfterMs }, "platform rate limit; delivery postponed");
          await inbox.retryLater(item.id, error.message, error.retryAfterMs);
        } else if (error instanceof DeliveryError && !error.retryable) {
          log.warn({ inboxId: item.id, err: error }, "reply cannot be delivered");
          await inbox.fail(item.id, error.message);
        } else if (failsEveryTime(error)) {
          // Trying again would only hold the chat's next messages back behind this one.
          log.error({ inboxId: item.id, chat: item.message.chat, err: error }, "message cannot be handled; failed without retrying");
          await inbox.fail(item.id, errorMessage(error));
        } else {
          log.error({ inboxId: item.id, chat: item.message.chat, err: error }, "message handling failed; will retry");
          await inbox.retryLater(item.id, errorMessage(error), backoffMs(item.attempts));
        }
      }
    },
  };
}

/**
 * Errors that come from the row itself, not from the moment: a programming error on a value of an unexpected type
 * (TypeError, RangeError, SyntaxError without a cause; fetch's network TypeError carries one) or the database refusing
 * the values it was given (but a unique violation). Everything else (a model, platform or database outage) may pass.
 */
function failsEveryTime(error: unknown): boolean {
  const storage = storageFailure(error);
  // A unique violation can be a race with another worker, which the next attempt does not meet.
  if (storage.kind === "data") return storage.code !== "23505";
  const programming = error instanceof TypeError || error instanceof RangeError || error instanceof SyntaxError;
  return programming && error.cause === undefined;
}

function replyTarget(item: InboxItem): string | undefined {
  return item.message.isGroup ? item.message.platformMessageId : undefined;
}

/** A reply started this close to the end of a platform's reply window might not make it in time. */
const REPLY_WINDOW_MARGIN_MS = 10 * 60 * 1000;

/** What a person is told when they sent something Parley cannot use yet ("a poll", "an order"). */
function unsupportedReply(what: string): string {
  return `I can't use ${what} yet. Write to me, or send a photo or a voice message.`;
}
