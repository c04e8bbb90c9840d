import { performance } from "node:perf_hooks";
import type { FakeTelegram, SentCall } from "../../test/fakes/telegram-api.ts";

/**
 * Simulated Telegram users. Each one writes a message into the fake Bot API (as if typed in a private chat),
 * waits until the bot's reply arrives there (a sendMessage with the expected text), waits `thinkMs`, and writes
 * the next. The fake's onCall hook tells when the bot's calls arrive: the first visible text (a draft, an edit or a
 * message) and the reply itself.
 */

export interface Sample {
  user: number;
  /** From writing the message to the first draft, edit or message in that chat. */
  firstVisibleMs: number;
  /** From writing the message to the reply's arrival at the Bot API. */
  replyMs: number;
  /** The reply's text (for the commands that answer something other than an echo). */
  text: string;
}

interface Waiting {
  matches: (text: string) => boolean;
  startedAt: number;
  firstAt?: number;
  resolve: (sample: { firstAt: number; doneAt: number; text: string }) => void;
}

const VISIBLE = new Set(["sendmessage", "sendmessagedraft", "editmessagetext"]);

export interface ReplyWatcher {
  /** Give this to startFakeTelegram({ onCall }). */
  onCall(call: SentCall): void;
  /** Resolves when a reply matching `matches` arrives in `chatId`. */
  expect(chatId: number, matches: (text: string) => boolean, timeoutMs: number): Promise<{ firstAt: number; doneAt: number; text: string }>;
}

export function createReplyWatcher(): ReplyWatcher {
  const waiting = new Map<number, Waiting>();
  return {
    onCall(call) {
      const now = performance.now();
      const method = call.method.toLowerCase();
      if (!VISIBLE.has(method) || call.errorCode !== undefined) return;
      const chatId = Number(call.params.chat_id);
      const entry = waiting.get(chatId);
      if (!entry) return;
      entry.firstAt ??= now;
      const text = String(call.params.text ?? "");
      if (method === "sendmessage" && entry.matches(text)) {
        waiting.delete(chatId);
        entry.resolve({ firstAt: entry.firstAt, doneAt: now, text });
      }
    },
    expect(chatId, matches, timeoutMs) {
      if (waiting.has(chatId)) throw new Error(`already waiting for a reply in chat ${chatId}`);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(chatId);
          reject(new Error(`no reply in chat ${chatId} within ${timeoutMs} ms`));
        }, timeoutMs);
        waiting.set(chatId, {
          matches,
          startedAt: performance.now(),
          resolve: (result) => {
            clearTimeout(timer);
            resolve(result);
          },
        });
      });
    },
  };
}

export interface DriveOptions {
  telegram: FakeTelegram;
  watcher: ReplyWatcher;
  users: number;
  messagesPerUser: number;
  /** Telegram user ids are `firstUserId + i` (their private chats have the same ids). */
  firstUserId: number;
  /** Pause after a reply before the next message: keeps Telegram's 1 message a second per chat out of the figures. */
  thinkMs: number;
  /** Users start spread over this many milliseconds, rather than all at once. */
  rampMs?: number;
  timeoutMs?: number;
  /** The text of message `k` of user `i`; default `u<i> m<k> <tag>`. */
  text?: (user: number, k: number) => string;
  /** Whether a sendMessage text is the reply to `sent`; default: it is the fake model's echo of it. */
  isReply?: (text: string, sent: string) => boolean;
  tag?: string;
}

export interface DriveResult {
  samples: Sample[];
  /** From the first message written to the last reply arrived. */
  wallMs: number;
}

export async function driveUsers(options: DriveOptions): Promise<DriveResult> {
  const { telegram, watcher, users, messagesPerUser, firstUserId, thinkMs } = options;
  const rampMs = options.rampMs ?? Math.min(thinkMs, 1_000);
  const timeoutMs = options.timeoutMs ?? 60_000;
  const tag = options.tag ?? "";
  const textOf = options.text ?? ((i: number, k: number) => `u${i} m${k}${tag ? ` ${tag}` : ""}`);
  const isReply = options.isReply ?? ((text: string, sent: string) => text === `echo: ${sent}`);
  const samples: Sample[] = [];
  const started = performance.now();

  const user = async (i: number) => {
    await sleep((rampMs * i) / Math.max(1, users));
    const id = firstUserId + i;
    for (let k = 0; k < messagesPerUser; k++) {
      const text = textOf(i, k);
      const expected = watcher.expect(id, (reply) => isReply(reply, text), timeoutMs);
      const t0 = performance.now();
      telegram.pushUpdate(telegram.updates.privateText(text, { userId: id, firstName: `User ${i}` }));
      const { firstAt, doneAt, text: reply } = await expected;
      samples.push({ user: i, firstVisibleMs: firstAt - t0, replyMs: doneAt - t0, text: reply });
      if (k < messagesPerUser - 1) await sleep(thinkMs);
    }
  };
  await Promise.all(Array.from({ length: users }, (_, i) => user(i)));
  return { samples, wallMs: performance.now() - started };
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
