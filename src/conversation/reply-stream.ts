import { randomInt } from "node:crypto";
import { cleanText } from "../core/clean-text.ts";
import { DeliveryError, RateLimitedError } from "../core/errors.ts";
import { splitText } from "../core/split-text.ts";
import type { Button, ChannelAdapter, ChatKey } from "../core/types.ts";

/**
 * Shows a reply to the user while the model writes it, then delivers the final text, as well as the channel allows:
 *
 * - draft: a draft that grows (Telegram private chats, the web page), at most every `draftIntervalMs`;
 * - edit: one message sent with the first text (or the status) and edited in place, at most every
 *   `editIntervalMs` (Telegram's floors: 1.1 s in private chats, 3.1 s in groups); the final text replaces it;
 * - none (WhatsApp, Messenger): "typing…" every few seconds, and the reply when it is done.
 *
 * Every platform call for one reply goes through one loop, so two never run at once: while one is in flight,
 * later text waits and the next preview shows only the latest. A preview is a courtesy: its failure is skipped
 * (after a RateLimitedError nothing is called before `retryAfterMs`), while a failure to deliver the final reply
 * propagates to the caller, which retries. All timing goes through `clock`.
 */

export interface Clock {
  now(): number;
  /** Calls `fire` after `ms`, unless the returned function cancels it first. */
  setTimer(ms: number, fire: () => void): () => void;
}

export interface ReplyStreamOptions {
  adapter: ChannelAdapter;
  chat: ChatKey;
  isGroup: boolean;
  /** Platform id of the message this reply answers; given to the first message sent. */
  replyTo?: string;
  /** Buttons under the last message of the reply, where the platform has them. */
  buttons?: readonly Button[];
  clock?: Clock;
  /** Least time between two drafts. Default 400 ms. */
  draftIntervalMs?: number;
  /** Least time between two edits of the preview message. Default 1100 ms in private chats, 3100 ms in groups. */
  editIntervalMs?: { direct: number; group: number };
  /** Shown while there is no text yet, e.g. "Thinking…"; see `setStatus`. */
  status?: string;
  /**
   * Nothing but the reply itself is sent during the first `quietMs` (no "typing…", no preview): a reply done by
   * then needs no sign of progress, and costs one platform call instead of three. Default 0.
   */
  quietMs?: number;
}

export interface ReplyStream {
  /** Appends model text. Never blocks: the preview catches up on its own schedule. */
  push(delta: string): void;
  /** Replaces the status shown while there is no text yet (e.g. "2 of 3 agents done…"). */
  setStatus(text: string): void;
  /** The model failed mid-stream and another starts over: forgets the text so far (the same preview is reused). */
  reset(): void;
  /**
   * Ends the previews and delivers `finalText` (default: the text pushed), split to the channel's limit. With
   * edits, the preview message becomes the first chunk; a final edit refused for good (a DeliveryError that is not
   * retryable: the message is gone or too old) falls back to sending. Rejects on an empty reply and on a failed
   * delivery, with the adapter's error. Resolves with the ids of the messages that hold the reply, in order.
   * Calling it again returns the same result.
   */
  finish(finalText?: string): Promise<{ messageIds: string[] }>;
  /** Ends the previews without delivering anything; a preview already shown stays as it is. */
  abort(): Promise<void>;
}

const TYPING_EVERY_MS = 4_000;
const DEFAULT_DRAFT_INTERVAL_MS = 400;
const DEFAULT_EDIT_INTERVAL_MS = { direct: 1_100, group: 3_100 };

type Preview =
  | { kind: "draft"; draft: (text: string) => Promise<void> }
  | { kind: "edit"; edit: (id: string, text: string) => Promise<void>; message?: { id: string; text: string } }
  | { kind: "none" };

/** A platform call the preview loop owes the user, and the earliest time it may run. */
interface PendingCall {
  at: number;
  run: () => Promise<void>;
}

// A plain timer, not timers/promises with an AbortSignal: a reply pauses several times, and each cancelled
// promise-timer builds an AbortError with its stack trace (a measurable share of a message's CPU).
const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (ms, fire) => {
    const timer = setTimeout(fire, ms);
    return () => clearTimeout(timer);
  },
};

export function createReplyStream(options: ReplyStreamOptions): ReplyStream {
  const { adapter, chat, isGroup, replyTo } = options;
  const clock = options.clock ?? systemClock;
  const maxText = adapter.limits.maxText;
  const preview = choosePreview(adapter, chat, isGroup);
  const editInterval = options.editIntervalMs ?? DEFAULT_EDIT_INTERVAL_MS;
  const previewEveryMs =
    preview.kind === "draft"
      ? (options.draftIntervalMs ?? DEFAULT_DRAFT_INTERVAL_MS)
      : isGroup
        ? editInterval.group
        : editInterval.direct;
  const replyOpts = replyTo === undefined ? undefined : { replyTo };

  let text = "";
  let status = options.status;
  let state: "writing" | "finished" | "aborted" = "writing";
  /** The last preview tried, shown or not: a preview is retried only when there is something new to show. */
  let previewTried: string | undefined;
  let previewShown = false;
  let lastPreviewAt = -Infinity;
  let lastTypingAt = -Infinity;
  let blockedUntil = -Infinity;
  let wake: (() => void) | undefined;
  let finished: Promise<{ messageIds: string[] }> | undefined;
  const quietUntil = clock.now() + (options.quietMs ?? 0);

  const noteRateLimit = (error: unknown) => {
    if (error instanceof RateLimitedError) blockedUntil = Math.max(blockedUntil, clock.now() + error.retryAfterMs);
  };

  /** Runs a preview-time call; its failure only postpones what follows. */
  const courtesy = async (run: () => Promise<unknown>): Promise<boolean> => {
    try {
      await run();
      return true;
    } catch (error) {
      noteRateLimit(error);
      return false;
    }
  };

  const previewText = (): string | undefined => {
    // A draft shows no control character; a high surrogate at the end waits for its other half in the next chunk.
    const body = cleanText(text.replace(/[\uD800-\uDBFF]$/, "")).trim() || status?.trim();
    return (body && clip(body, maxText)) || undefined;
  };

  const showPreview = async (shown: string) => {
    previewTried = shown;
    lastPreviewAt = clock.now();
    let ok = false;
    if (preview.kind === "draft") {
      ok = await courtesy(() => preview.draft(shown));
    } else if (preview.kind === "edit") {
      const message = preview.message;
      ok = await courtesy(async () => {
        if (message) await preview.edit(message.id, shown);
        else preview.message = { id: (await adapter.send(chat, shown, replyOpts)).id, text: shown };
      });
      if (ok && message) message.text = shown;
    }
    previewShown ||= ok;
  };

  const showTyping = async (typing: (chat: ChatKey) => Promise<void>) => {
    lastTypingAt = clock.now();
    await courtesy(() => typing.call(adapter, chat));
  };

  /** The earliest call due: typing while nothing is visible (always without previews), then the latest preview. */
  const nextCall = (): PendingCall | undefined => {
    const calls: PendingCall[] = [];
    const typing = adapter.typing;
    if (typing && (preview.kind === "none" || !previewShown)) {
      calls.push({ at: Math.max(lastTypingAt + TYPING_EVERY_MS, blockedUntil, quietUntil), run: () => showTyping(typing) });
    }
    const wanted = preview.kind === "none" ? undefined : previewText();
    if (wanted !== undefined && wanted !== previewTried) {
      calls.push({ at: Math.max(lastPreviewAt + previewEveryMs, blockedUntil, quietUntil), run: () => showPreview(wanted) });
    }
    // The earliest; on a tie, typing (it comes first).
    return calls.reduce<PendingCall | undefined>((best, call) => (best && best.at <= call.at ? best : call), undefined);
  };

  /** Waits `ms` (forever when undefined) or until push, setStatus, reset, finish or abort pokes it. */
  const pause = (ms: number | undefined) =>
    new Promise<void>((resolve) => {
      const cancel = ms === undefined ? undefined : clock.setTimer(ms, () => wake?.());
      wake = () => {
        wake = undefined;
        cancel?.();
        resolve();
      };
    });

  const loop = async () => {
    while (state === "writing") {
      const next = nextCall();
      const now = clock.now();
      if (next && next.at <= now) await next.run();
      else await pause(next ? next.at - now : undefined);
    }
  };
  const looping = loop();

  const stop = async (end: "finished" | "aborted") => {
    if (state === "writing") state = end;
    wake?.();
    await looping;
  };

  const waitUntil = async (at: number) => {
    const ms = at - clock.now();
    if (ms > 0) await new Promise<void>((resolve) => clock.setTimer(ms, resolve));
  };

  /** Sends or edits for the final reply: errors propagate, but a rate limit still holds back what follows. */
  const deliveryCall = async <T>(run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (error) {
      noteRateLimit(error);
      throw error;
    }
  };

  /** Puts the first chunk into the preview message; false when that message can no longer be edited. */
  const editPreview = async (
    edit: (id: string, text: string) => Promise<void>,
    message: { id: string; text: string },
    chunk: string,
  ): Promise<boolean> => {
    if (message.text === chunk) return true;
    await waitUntil(Math.max(blockedUntil, lastPreviewAt + previewEveryMs));
    try {
      await deliveryCall(() => edit(message.id, chunk));
      message.text = chunk;
      return true;
    } catch (error) {
      if (error instanceof DeliveryError && !error.retryable) return false;
      throw error;
    }
  };

  const deliver = async (finalText: string | undefined) => {
    const aborted = state === "aborted";
    await stop("finished");
    if (aborted) throw new Error("createReplyStream: finish() after abort()");
    const final = tidy(finalText ?? text);
    if (final === "") throw new Error("createReplyStream: the reply is empty; there is nothing to deliver");
    const messageIds: string[] = [];
    const chunks = splitText(final, maxText);
    for (const [index, chunk] of chunks.entries()) {
      if (index === 0 && preview.kind === "edit" && preview.message) {
        if (await editPreview(preview.edit, preview.message, chunk)) {
          messageIds.push(preview.message.id);
          continue;
        }
      }
      await waitUntil(blockedUntil);
      const last = index === chunks.length - 1;
      const opts = { ...(index === 0 ? replyOpts : {}), ...(last && options.buttons ? { buttons: options.buttons } : {}) };
      const sent = await deliveryCall(() => adapter.send(chat, chunk, Object.keys(opts).length > 0 ? opts : undefined));
      messageIds.push(sent.id);
    }
    return { messageIds };
  };

  const poke = () => wake?.();

  return {
    push(delta) {
      if (state !== "writing" || delta === "") return;
      text += delta;
      poke();
    },
    setStatus(next) {
      if (state !== "writing") return;
      status = next;
      poke();
    },
    reset() {
      if (state !== "writing") return;
      text = "";
      poke();
    },
    finish(finalText) {
      finished ??= deliver(finalText);
      return finished;
    },
    abort() {
      return stop("aborted");
    },
  };
}

function choosePreview(adapter: ChannelAdapter, chat: ChatKey, isGroup: boolean): Preview {
  const { draft, edit } = adapter;
  if (adapter.limits.canDraft && draft && !isGroup) {
    // Telegram takes a positive 31-bit draft id; one per reply, so that a new reply never updates an old draft.
    const draftId = randomInt(1, 2 ** 31);
    return { kind: "draft", draft: (text) => draft.call(adapter, chat, draftId, text) };
  }
  if (adapter.limits.canEdit && edit) return { kind: "edit", edit: (id, text) => edit.call(adapter, chat, id, text) };
  return { kind: "none" };
}

/** A preview longer than a message keeps its beginning and ends with "…"; never half a surrogate pair. */
function clip(text: string, max: number): string {
  const clipped = text.length > max;
  let end = clipped ? max - 1 : text.length;
  // A pair cut by the limit, or one whose second half has not arrived yet.
  if (isHighSurrogate(text.charCodeAt(end - 1))) end--;
  return text.slice(0, end) + (clipped ? "…" : "");
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/** The final text without leading blank lines or trailing whitespace (a first line's indentation is kept). */
function tidy(text: string): string {
  return text.replace(/^(?:[ \t]*\r?\n)+/, "").trimEnd();
}
